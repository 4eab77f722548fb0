"""Fleet scans: the single-machine pipeline run by Celery workers, results in PostgreSQL.

    exposure worker --broker redis://HOST:6379/0 --db postgresql://USER@HOST/DB --vantage eu
    exposure scan TARGET... --broker redis://... --db postgresql://... --vantage eu --vantage us

The coordinator (`scan --broker`) resolves the targets and sends one task per address (and
port range for large port lists) and vantage; each worker runs scanner.api.scan_targets on
the address of its task, with its share of the rate, and stores the result in the database;
the coordinator merges the results into the usual report (see docs/fleet.md).

Only spec.py, codec.py, merge.py and vantage.py import without Celery: the rest needs the
optional extra (`pip install 'exposure[fleet]'`).
"""
