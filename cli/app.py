"""The `sonorant` command. Each command group lives in its own module; this file wires them up."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

import typer

from ..core.errors import SonorantError
from . import align as align_cli
from . import bench as bench_cli
from . import codec as codec_cli
from . import data as data_cli
from . import evaluate as eval_cli
from . import serve as serve_cli
from . import train as train_cli
from . import tts as tts_cli
from . import voice as voice_cli

app = typer.Typer(help="Sonorant: neural codec language models for audio.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.add_typer(codec_cli.app, name="codec")
app.add_typer(train_cli.app, name="train")
app.add_typer(data_cli.app, name="data")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(eval_cli.app, name="eval")
app.add_typer(voice_cli.app, name="voice")
app.command("tts")(tts_cli.speak)
app.command("generate")(tts_cli.generate)
app.command("continue")(tts_cli.continue_)
app.command("align")(align_cli.align)
app.command("serve")(serve_cli.serve)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every open atomic write removes its temporary file."""


def _terminate(signum, frame) -> None:
    raise Terminated


@contextmanager
def _sigterm_raises():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors a user can cause print one line on stderr and exit with status 2."""
    try:
        with _sigterm_raises():
            code = app(args=argv, standalone_mode=False)
    except Terminated:
        print("sonorant: terminated", file=sys.stderr)
        sys.exit(143)
    except SonorantError as e:
        print(f"sonorant: error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("sonorant: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors (typer vendors click)
        if type(e).__name__ == "NoArgsIsHelpError":
            print(e.ctx.get_help())
            sys.exit(0)
        print(f"sonorant: error: {e.format_message()}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
