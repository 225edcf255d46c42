"""Approval flows: definitions, the pure engine, and (later) persistence."""
