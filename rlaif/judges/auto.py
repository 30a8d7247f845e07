"""``judge: {name: auto}``: an API judge when its key is in the environment, otherwise the local judge.

Why: a sample that must run offline on a laptop and use a strong judge on a team's machine should not need two
configs. ``auto`` walks ``prefer`` in order and builds the first judge that can run here: an API judge whose key
variable (its ``api_key_env`` or the SDK's default) is set, or one with a ``base_url`` (an OpenAI-compatible local
server may need no key); ``local`` needs nothing. The choice is not hidden: the built judge's own ``judge_id`` goes
into the run, the manifest and the cache key, so verdicts from different judges never mix. Wrapper options at the
top level (``debias``, ``cache``) wrap whichever judge was chosen; per-judge options go in a mapping under its name.

    judge:
      name: auto
      options:
        prefer: [anthropic, openai, local]
        anthropic: {model: claude-haiku-4-5, debias: true}
        openai: {model: gpt-4o-mini}
        local: {batch_size: 8, debias: average}    # both orders, label probabilities averaged (order_average.py)
        cache: true

    judge = make_auto_judge({"prefer": ["anthropic", "local"]}, store=None)   # local unless ANTHROPIC_API_KEY is set
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

from rlaif.judges.base import Judge

log = logging.getLogger(__name__)

API_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
DEFAULT_PREFER = ("anthropic", "openai", "local")
DEFAULT_MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}
KNOWN = ("anthropic", "openai", "local")


@dataclass(frozen=True)
class AutoChoice:
    name: str  # the judge name picked from ``prefer``
    options: dict[str, Any]  # its options, as make_judge takes them
    reason: str  # one line for logs and the CLI: why this one


def choose_judge(options: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> AutoChoice:
    """Pick the judge ``auto`` stands for, without building it (so the choice is testable without a model)."""
    from rlaif.judges.registry import WRAPPER_OPTIONS

    options = dict(options or {})
    environ = os.environ if environ is None else environ
    # wrapper flags given next to prefer (debias, cache, ...) apply to whichever judge is chosen; the registry strips
    # them before calling us once ``auto`` is registered, and they arrive here when make_auto_judge is called directly
    wrappers = {k: options.pop(k) for k in WRAPPER_OPTIONS if k in options}
    prefer = options.pop("prefer", list(DEFAULT_PREFER))
    if isinstance(prefer, str):
        prefer = [prefer]
    if not isinstance(prefer, list) or not prefer or not all(isinstance(p, str) for p in prefer):
        raise ValueError("judge.options.prefer: must be a non-empty list of judge names, e.g. [anthropic, local]")
    unknown = [p for p in prefer if p not in KNOWN]
    if unknown:
        raise ValueError(f"judge.options.prefer: unknown judge(s) {unknown}; auto chooses among {list(KNOWN)}")
    extra = set(options) - set(KNOWN)
    if extra:
        raise ValueError(f"judge.options: unknown option(s) {sorted(extra)} for 'auto'; it takes prefer, "
                         f"{', '.join(KNOWN)} (each a mapping of that judge's options) and debias/cache")
    for name in KNOWN:
        if name in options and not isinstance(options[name] or {}, dict):
            raise ValueError(f"judge.options.{name}: must be a mapping of that judge's options")
    skipped = []
    for name in prefer:
        sub = {**dict(options.get(name) or {}), **wrappers}
        if name == "local":
            return AutoChoice("local", sub, "no API key set; using the local judge" if skipped
                              else "local judge preferred")
        env = sub.get("api_key_env") or API_KEY_ENV[name]
        if environ.get(env) or sub.get("base_url"):
            sub.setdefault("model", DEFAULT_MODELS[name])
            why = f"{env} is set" if environ.get(env) else f"base_url {sub['base_url']} given"
            return AutoChoice(name, sub, f"{why}; using the {name} judge")
        skipped.append(env)
    raise ValueError(f"judge 'auto': none of {prefer} can run here (no {', '.join(skipped)} in the environment); "
                     f"add 'local' to judge.options.prefer or set a key")


def make_auto_judge(options: Mapping[str, Any] | None, store=None, *, verify=None,
                    environ: Mapping[str, str] | None = None) -> Judge:
    """Build the judge ``choose_judge`` picks (through the registry, so its own wrapper options apply).

    ``debias: average`` in the chosen judge's options asks both orders and averages the label probabilities
    (``OrderAveragedJudge``, for position-biased local models); ``average_tie_margin`` sets its tie band.
    """
    from rlaif.judges.registry import make_judge

    choice = choose_judge(options, environ)
    log.info("judge auto: %s", choice.reason)
    opts = dict(choice.options)
    average = opts.get("debias") == "average"
    if average:
        opts.pop("debias")
        margin = float(opts.pop("average_tie_margin", 0.0))
        cache = opts.pop("cache", False)  # outermost, so a re-run makes no call at all
    judge = make_judge(choice.name, options=opts, verify=verify, store=store)
    if average:
        from rlaif.judges.order_average import OrderAveragedJudge

        judge = OrderAveragedJudge(judge, margin)
        if cache:
            from rlaif.judges.cache import CachedJudge

            if store is None:
                raise ValueError("judge.options.cache: needs the store (make_judge(..., store=store))")
            judge = CachedJudge(judge, store)
    judge.auto_choice = choice  # type: ignore[attr-defined]  # for the CLI summary; judge_id already names it
    return judge
