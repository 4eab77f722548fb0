"""The `exposure` command line: a thin shell over scanner.api (SPEC "Command line").

Each group of commands lives in its own module and registers itself on `app`:
scan.py (scan, checks, version), monitor.py (history, show, diff, watch), preflight.py,
report_commands.py (schema). The options they share are declared once, with the one builder
of a scan's ScanOptions (options.py); every report format is drawn by one function
(render.py). Command modules import the library inside the command that needs it, so
starting one command never pays for another's stages. main() maps failures to SPEC's exit
codes: one line on stderr, never a traceback. The habits of nmap and nuclei work as short
forms: -h, -V/--version, -v/--debug and --no-color (before or after the command), and scan's
(and watch's) -p, -iL, -4/-6, and scan's -o, -oA.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.exceptions import Abort, TyperException

from scanner import __version__
from scanner.cli import console
from scanner.errors import BadInput, ScanFailed

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_SCAN_FAILED = 0, 1, 2, 3
CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="exposure",
    help="See your network the way the internet sees it, and learn what to fix.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
    # Plain help, like nmap's and every Unix tool's: greppable, readable in 80 columns.
    rich_markup_mode=None,
)

Verbose = Annotated[
    int, typer.Option("--verbose", "-v", count=True,
                      help="Say what each stage does, on stderr (-vv: debug).")
]
Debug = Annotated[bool, typer.Option("--debug", help="Debug output on stderr (implies -vv).")]
NoColor = Annotated[
    bool, typer.Option("--no-color", help="No colours (also when NO_COLOR is set).")
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"exposure {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
    verbose: Verbose = 0,
    debug: Debug = False,
    no_color: NoColor = False,
) -> None:
    """See your network the way the internet sees it, and learn what to fix."""
    console.configure(verbose=verbose, debug=debug, no_color=no_color)


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
    console.reset()
    # A scanned server chooses what makes libraries warn, and what an interrupted connection
    # leaves for the garbage collector: neither is printed unless --debug (console.py).
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable
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
    except typer.Exit as done:
        return done.exit_code
    finally:
        sys.unraisablehook = previous_hook
    return result if isinstance(result, int) else EXIT_OK


def _quiet_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    if console.SETTINGS.verbosity >= 2:
        sys.__unraisablehook__(unraisable)


def _fail(code: int, message: str) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "error"
    sys.stderr.write(f"exposure: error: {first_line}\n")
    return code
