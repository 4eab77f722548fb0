"""Settings for the whole test session.

Every JSON report is validated against the package's schema (EXPOSURE_VALIDATE_REPORTS).

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

# Every JSON report any test produces, in process or through the CLI, is validated against
# the package's JSON Schema (scanner/report/json_report.py).
os.environ["EXPOSURE_VALIDATE_REPORTS"] = "1"


def pytest_unconfigure(config: object) -> None:
    shutil.rmtree(_SANDBOX, ignore_errors=True)
