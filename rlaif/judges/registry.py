"""Judges by name, as the YAML config and the CLI's ``--judge`` spell them."""

from __future__ import annotations

from typing import Any

from rlaif.judges.base import Judge
from rlaif.judges.simple import BiasedJudge, StubJudge
from rlaif.judges.verifier import VerifierJudge

JUDGE_NAMES = ("verifier", "stub", "biased")


def make_judge(name: str, *, verify=None, options: dict[str, Any] | None = None) -> Judge:
    """Build a judge. ``verify`` is the task's verifier (required by ``verifier``)."""
    if name == "stub":
        return StubJudge()
    if name == "biased":
        return BiasedJudge()
    if name == "verifier":
        if verify is None:
            raise ValueError("judge 'verifier' needs a verifier: set verifier.kind in the config (e.g. sql)")
        return VerifierJudge(verify)
    raise ValueError(f"unknown judge {name!r}; one of {', '.join(JUDGE_NAMES)}")
