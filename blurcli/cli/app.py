"""The Typer app: errors caught once and printed as one line, SIGTERM handled as Ctrl-C, --version."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any, NoReturn

import typer

from blurcli import __version__
from blurcli.cli.output import (
    print_error,
)
from blurcli.errors import BlurcliError


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: what is written stays, nothing half-written is left."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


class _Group(typer.core.TyperGroup):
    """Catches errors once for every command and prints each as one line on stderr: BlurcliError
    (a user's mistake or bad input), Click's usage errors (a value an option's type or range
    refuses, an unknown option or command), OSError (a file system refusing), Ctrl-C and SIGTERM.
    Anything else is a bug: one line too, and the traceback with BLURCLI_DEBUG=1."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: typer.Context | None = None, **extra: Any
    ) -> typer.Context:
        try:  # the options before the command, and the command's name
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as error:
            _usage_line(error)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as error:  # the command's own options and arguments
            _usage_line(error)
        except BlurcliError as error:
            print_error(str(error))
            ctx.exit(error.exit_code)
        except _Terminated:
            print_error("terminated (SIGTERM); finished outputs are kept, nothing half-written is left")
            ctx.exit(143)
        except KeyboardInterrupt:
            print_error("interrupted; finished outputs are kept, nothing half-written is left")
            ctx.exit(130)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            print_error(f"{where}{error.strerror or error}")
            ctx.exit(1)
        except Exception as error:
            if os.environ.get("BLURCLI_DEBUG") or type(error).__module__.split(".")[0] in ("click", "typer"):
                raise  # Typer's own exits and usage errors, which it prints
            print_error(f"internal error: {type(error).__name__}: {error}".splitlines()[0] + _REPORT)
            ctx.exit(1)


_REPORT = " (a bug: please report it, with the traceback BLURCLI_DEBUG=1 prints)"


def _usage_line(error: typer.TyperException) -> NoReturn:
    """Click's error in the one line every other error takes, saying where the help is, instead
    of its box of usage and hint; exits with its code (2). `blurcli` alone still shows the help."""
    if type(error).__name__ == "NoArgsIsHelpError":  # Click prints the help for it
        raise error
    command = getattr(error, "ctx", None)
    where = f" (see {command.command_path} --help)" if command is not None else ""
    print_error(" ".join(error.format_message().split()).rstrip(".") + where)
    raise typer.Exit(error.exit_code)


app = typer.Typer(
    cls=_Group,
    help="Portrait-mode background blur: a small UNet finds the subject, the rest is blurred.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"blurcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Portrait-mode background blur: a small UNet finds the subject, the rest is blurred."""


def main() -> None:
    """Console-script entry point; SIGTERM stops a run as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()
