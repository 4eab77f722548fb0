"""`python -m scanner` is the same as the `exposure` console script."""

from scanner.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
