"""The ``rlaif`` command: headless access to everything the workbench does.

One module per group of commands (``run``: run/runs/resume/reproduce; ``anchors``; ``kappa``; ``best_of_n``;
``reward_model``: train-rm; ``workbench``: the Streamlit server), each registering its parsers with
``add_commands``; ``common`` holds what they share.

    rlaif run sample_data/harbor_sql/loop.yaml --iterations 3
    rlaif runs
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from rlaif.cli import anchors, best_of_n, judge, kappa, reward_model, run, workbench
from rlaif.cli.common import DEFAULT_STORE, run_command

COMMAND_GROUPS = (run, anchors, kappa, best_of_n, reward_model, judge, workbench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlaif", description="RLAIF Workbench: the loop, headless.")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"DuckDB store file (default {DEFAULT_STORE})")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # transformers 5 deprecation notices about TRL's argument names say nothing a user can act on
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
