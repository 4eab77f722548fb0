"""TLS grading with sslyze, by the SSL Labs rating guide (see check.py, rating.py)."""
