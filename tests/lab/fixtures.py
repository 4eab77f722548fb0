"""pytest fixtures for the lab. Wire them in tests/conftest.py, e.g.

from tests.lab.fixtures import lab  # noqa: F401
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .netns import Lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The default lab, started once per session and always torn down."""
    if os.geteuid() != 0:
        # A failure, not a skip: a lab test that silently does not run proves nothing.
        pytest.fail(
            "lab tests need root (network namespaces, veth, iptables). Run them as root, or "
            "deselect them with -m 'not lab'.",
            pytrace=False,
        )
    instance = Lab()
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
