"""The scan history: every scan saved in a per-user SQLite database (see store.py)."""

from scanner.store.codec import report_from_dict
from scanner.store.errors import NotOurDatabase, SchemaTooNew, StoreError
from scanner.store.paths import default_db_path
from scanner.store.progress import ProgressWriter, ResumePlan
from scanner.store.recorder import ScanRecorder
from scanner.store.store import FindingAlert, NoDatabase, ScanNotFound, ScanRow, Store

__all__ = [
    "FindingAlert",
    "NoDatabase",
    "NotOurDatabase",
    "ProgressWriter",
    "ResumePlan",
    "ScanNotFound",
    "ScanRecorder",
    "ScanRow",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "default_db_path",
    "report_from_dict",
]
