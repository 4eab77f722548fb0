"""Every test under tests/lab shares one lab per session (started once, always torn down)."""

from tests.lab.fixtures import lab  # noqa: F401
