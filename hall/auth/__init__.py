"""Signing in to the hall through the campus IdP (OpenID Connect) and the hall's own sessions.

The hall is an ordinary relying party: authorization code + S256 PKCE as a confidential
client, RP-initiated logout, and back-channel logout so that signing out at the IdP ends
hall sessions. It never reads the IdP's tables.
"""
