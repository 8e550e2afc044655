"""mdval.md."""
