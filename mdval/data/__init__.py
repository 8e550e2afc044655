"""mdval.data."""
