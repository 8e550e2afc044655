"""mdval.train."""
