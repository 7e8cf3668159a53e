"""Web assets shipped with the core as package data: templates/ and static/ (read with importlib.resources)."""
