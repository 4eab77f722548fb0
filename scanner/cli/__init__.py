"""The `exposure` command line: a thin shell over scanner.api (SPEC "Command line").

Each group of commands lives in its own module and registers itself on `app`:
scan.py (scan, checks, version). main() maps failures to SPEC's exit codes.
"""

from __future__ import annotations

import sys
import warnings

import typer
from typer.exceptions import Abort, TyperException

from scanner.errors import BadInput, ScanFailed

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_SCAN_FAILED = 0, 1, 2, 3

app = typer.Typer(
    name="exposure",
    help="See your network the way the internet sees it, and learn what to fix.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    import scanner.cli.fleet
    import scanner.cli.monitor
    import scanner.cli.preflight
    import scanner.cli.report_commands  # noqa: F401
    from scanner.cli import scan  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps every failure to SPEC's exit codes with one clear line, no traceback."""
    args = sys.argv[1:] if argv is None else argv
    # Libraries warn about odd data (cryptography about a 200-character certificate name):
    # the scanned server chooses that data, so it must not get to write on the user's stderr.
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", module="cryptography")
    _register_commands()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args or ["--help"], prog_name="exposure", standalone_mode=False)
    except BadInput as error:
        return _fail(EXIT_BAD_INPUT, str(error))
    except TyperException as error:  # usage errors: unknown option, bad choice, missing target
        return _fail(EXIT_BAD_INPUT, error.format_message())
    except Abort:
        return _fail(130, "interrupted")
    except ScanFailed as error:
        return _fail(EXIT_SCAN_FAILED, str(error))
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    return result if isinstance(result, int) else EXIT_OK


def _fail(code: int, message: str) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "error"
    sys.stderr.write(f"exposure: error: {first_line}\n")
    return code
