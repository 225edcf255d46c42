"""The hall's copy of the campus directory (departments, later positions) from the IdP."""
