"""exposure: an external network exposure scanner for self-hosters."""

__version__ = "0.1.0"
