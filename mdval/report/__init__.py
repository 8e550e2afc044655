"""mdval.report."""
