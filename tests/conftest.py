"""Settings for the whole test session.

The CLI saves every scan in a per-user history database and reads per-user config. Tests must
never touch the real user's files: XDG_DATA_HOME / XDG_CONFIG_HOME point at a temporary
directory for the session, inherited by every CLI subprocess the tests start (also inside
the lab's namespaces: `ip netns exec` keeps the environment).
"""

from __future__ import annotations

import os
import shutil
import tempfile

_SANDBOX = tempfile.mkdtemp(prefix="exposure-test-home-")
os.environ["XDG_DATA_HOME"] = os.path.join(_SANDBOX, "data")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_SANDBOX, "config")


def pytest_unconfigure(config: object) -> None:
    shutil.rmtree(_SANDBOX, ignore_errors=True)
