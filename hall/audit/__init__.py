"""The hall's audit log: who changed what in the hall, and when."""
