"""What every ``rlaif`` command shares: the store option, the one number formatter, progress output, and the one
handler that turns input problems into a single line on stderr.

Why one handler: a user who mistypes a path, a judge option or a run id should get ``error: <what and where>`` and
exit code 2 from every command alike, never a traceback. ``RLAIF_DEBUG=1`` shows the traceback instead.

    print(f"kappa {fmt(result.kappa)}")          # "kappa 0.812", "-" for None
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rlaif.core.fields import ConfigError
from rlaif.judges.llm_api import MissingAPIKeyError
from rlaif.loop.state import NothingToResume
from rlaif.training_launch import TrainingLaunchError
from store import SchemaTooNewError, StoreUnavailableError

DEFAULT_STORE = os.environ.get("RLAIF_STORE", "rlaif.duckdb")
#: Problems with what the user gave (files, ids, options, keys): one line, exit code 2. ConfigError, DatasetError,
#: RubricError and VerifierOptionError are ValueErrors; KeyError is a LookupError.
USER_ERRORS = (ValueError, LookupError, FileNotFoundError, NothingToResume, MissingAPIKeyError,
               StoreUnavailableError, SchemaTooNewError)
#: Failures of a step that already says everything in one line (the log file it names has the rest): exit code 1.
ONE_LINE_FAILURES = (TrainingLaunchError,)


def store_option(parser: argparse.ArgumentParser) -> None:
    """``--store`` on a subcommand too (``rlaif kappa ... --store F``), defaulting to the main parser's."""
    parser.add_argument("--store", default=argparse.SUPPRESS, help="DuckDB store file")


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts such as ``--limit``: a whole number >= 1 (argparse prints the one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table or summary line: floats to ``digits`` decimals, None as "-"."""
    return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; an input problem is one line on stderr and exit code 2, a failure that is already one line
    (``ONE_LINE_FAILURES``) exit code 1."""
    try:
        return func(args)
    except USER_ERRORS as err:
        if os.environ.get("RLAIF_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    except ONE_LINE_FAILURES as err:  # e.g. a training subprocess that crashed: its one line, not our traceback
        if os.environ.get("RLAIF_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1


@contextmanager
def config_file(path: str) -> Iterator[None]:
    """Name the config file in a ConfigError raised without one (an override flag, a check after loading), so every
    config problem reads ``error: loop.yaml: verifier.warehouse: file not found: ...``."""
    try:
        yield
    except ConfigError as err:
        if err.source:
            raise
        raise ConfigError(err.field_path, err.problem, str(path)) from None


def counter(enabled: bool, label: str | None = None) -> Callable[..., None]:
    """A one-line progress counter on stderr: ``counter(on, "train")(step, total)`` or ``counter(on)(stage, d, t)``."""
    def emit(*args) -> None:
        if not enabled:
            return
        stage, done, total = (label, *args) if label is not None else args
        print(f"\r{stage:<8} {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    return emit


class Bars:
    """One tqdm bar per (iteration, stage); progress events come from the pipeline's callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.key = None

    def __call__(self, event) -> None:
        if not self.enabled or event.stage == "gate":
            return
        from tqdm import tqdm

        key = (event.iteration, event.stage)
        if key != self.key:
            self.close()
            self.key = key
            self.bar = tqdm(total=event.total, desc=f"iter {event.iteration} {event.stage:<6}", leave=False,
                            file=sys.stderr, dynamic_ncols=True)
        if self.bar is not None:
            self.bar.total = event.total
            self.bar.n = event.step
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def print_table(headers: list[str], rows: list[list[Any]], indent: str = "  ", right: tuple[int, ...] = ()) -> None:
    """A plain-text table sized to its content: names are never cut (a long judge id widens its column)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[k]) for r in cells)]) for k, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return indent + "  ".join(v.rjust(w) if k in right else v.ljust(w)
                                  for k, (v, w) in enumerate(zip(values, widths))).rstrip()

    print(line(headers))
    for row in cells:
        print(line(row))
