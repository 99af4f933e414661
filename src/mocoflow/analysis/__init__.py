"""Tables from score files only (no torch)."""
