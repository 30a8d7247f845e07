"""Judges by name, as the YAML config and the CLI's ``--judge`` spell them, plus wrapper options for any of them.

A judge spec is a name and options. The name picks the base judge; three options wrap it, in this order, whatever
the name: ``debias`` (both orders), ``verifier_first`` (hard checks prune before the judge; needs the verifier) and
``cache`` (the DuckDB verdict cache, outermost so a re-run makes no call at all; needs ``store=``).

    judge:
      name: anthropic                       # stub | biased | verifier | anthropic | openai | local | ensemble | tiered
      options: {model: claude-haiku-4-5, concurrency: 16, rpm: 1000, budget_usd: 5, debias: true, cache: true}

    judge:
      name: tiered
      options:
        threshold: 0.7
        cheap: {name: local, options: {debias: true}}
        expensive: {name: openai, options: {model: gpt-4o, base_url: "http://localhost:8000/v1"}}

    judge:
      name: ensemble
      options: {min_agreement: 2, judges: [{name: anthropic, options: {model: claude-haiku-4-5}},
                                           {name: openai, options: {model: gpt-4o-mini}}, {name: local}]}

    judge = make_judge("anthropic", options={"model": "claude-haiku-4-5", "cache": True}, store=store)
"""

from __future__ import annotations

from typing import Any, Iterator

from rlaif.judges.base import Judge
from rlaif.judges.simple import BiasedJudge, StubJudge
from rlaif.judges.verifier import VerifierJudge

JUDGE_NAMES = ("verifier", "stub", "biased", "anthropic", "openai", "local", "auto", "ensemble", "tiered")
WRAPPER_OPTIONS = ("debias", "verifier_first", "cache")
LOCAL_OPTIONS = ("model_path", "gguf_file", "device", "batch_size", "tie_margin", "min_label_mass",
                 "max_prompt_tokens")


def split_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, bool]]:
    """(the base judge's options, the wrapper flags)."""
    options = dict(options or {})
    wrappers = {}
    for key in WRAPPER_OPTIONS:
        if key in options:
            value = options.pop(key)
            if not isinstance(value, bool):
                raise ValueError(f"judge.options.{key}: must be true or false, got {value!r}")
            wrappers[key] = value
    return options, wrappers


def _make_sub(value: Any, where: str, verify, store) -> Judge:
    name, options = sub_spec(value, where)
    return make_judge(name, options=options, verify=verify, store=store)


def sub_spec(value: Any, where: str) -> tuple[str, dict[str, Any]]:
    """A nested judge spec: ``{name: ..., options: {...}}`` or just a name."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError(f"{where}: must be a judge name or a mapping with name (and options)")
    unknown = set(value) - {"name", "options"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; a nested judge has name and options")
    options = value.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{where}.options: must be a mapping")
    return value["name"], options


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(f"judge {name!r} takes no options (besides {', '.join(WRAPPER_OPTIONS)}); "
                         f"got {sorted(options)}")


def _base_judge(name: str, options: dict[str, Any], verify, store) -> Judge:
    if name == "auto":  # an API judge when its key is set, else the local judge
        from rlaif.judges.auto import make_auto_judge

        return make_auto_judge(options, store, verify=verify)
    if name == "stub":
        _no_options(name, options)
        return StubJudge()
    if name == "biased":
        _no_options(name, options)
        return BiasedJudge()
    if name == "verifier":
        _no_options(name, options)
        if verify is None:
            raise ValueError("judge 'verifier' needs a verifier: set verifier.kind in the config (e.g. sql)")
        return VerifierJudge(verify)
    if name in ("anthropic", "openai"):
        from rlaif.judges.llm import AnthropicJudge, LLMJudgeSettings, OpenAIJudge

        settings = LLMJudgeSettings.from_options(options)
        return AnthropicJudge(settings) if name == "anthropic" else OpenAIJudge(settings)
    if name == "local":
        from rlaif.judges.local import LocalJudge

        unknown = set(options) - set(LOCAL_OPTIONS)
        if unknown:
            raise ValueError(f"judge.options: unknown option(s) {sorted(unknown)} for 'local'; "
                             f"known: {list(LOCAL_OPTIONS)}")
        return LocalJudge(**options)
    if name == "ensemble":
        from rlaif.judges.combinators import EnsembleJudge

        unknown = set(options) - {"judges", "min_agreement"}
        if unknown:
            raise ValueError(f"judge.options: unknown option(s) {sorted(unknown)} for 'ensemble'")
        members = options.get("judges")
        if not isinstance(members, list) or len(members) < 2:
            raise ValueError("judge.options.judges: an ensemble needs a list of at least 2 judges")
        judges = [_make_sub(m, f"judge.options.judges[{i}]", verify, store) for i, m in enumerate(members)]
        return EnsembleJudge(judges, options.get("min_agreement", 2))
    if name == "tiered":
        from rlaif.judges.combinators import TieredJudge

        unknown = set(options) - {"cheap", "expensive", "threshold"}
        if unknown or "cheap" not in options or "expensive" not in options:
            raise ValueError("judge.options: 'tiered' takes cheap, expensive (judge specs) and threshold")
        cheap = _make_sub(options["cheap"], "judge.options.cheap", verify, store)
        expensive = _make_sub(options["expensive"], "judge.options.expensive", verify, store)
        return TieredJudge(cheap, expensive, float(options.get("threshold", 0.7)))
    raise ValueError(f"unknown judge {name!r}; one of {', '.join(JUDGE_NAMES)}")


def make_judge(name: str, *, verify=None, options: dict[str, Any] | None = None, store=None) -> Judge:
    """Build a judge. ``verify`` is the task's verifier (``verifier``, ``verifier_first``); ``store`` backs ``cache``."""
    base_options, wrappers = split_options(options)
    judge = _base_judge(name, base_options, verify, store)
    if wrappers.get("debias"):
        from rlaif.judges.combinators import DebiasedJudge

        judge = DebiasedJudge(judge)
    if wrappers.get("verifier_first"):
        from rlaif.judges.combinators import VerifierFirstJudge

        if verify is None:
            raise ValueError("judge.options.verifier_first: needs a verifier: set verifier.kind in the config")
        judge = VerifierFirstJudge(VerifierJudge(verify), judge)
    if wrappers.get("cache"):
        from rlaif.judges.cache import CachedJudge

        if store is None:
            raise ValueError("judge.options.cache: needs the store (make_judge(..., store=store))")
        judge = CachedJudge(judge, store)
    return judge


def walk_judges(judge: Judge) -> Iterator[Judge]:
    """The judge and every judge nested in it (combinators expose theirs as ``inner_judges``)."""
    yield judge
    for inner in getattr(judge, "inner_judges", ()):
        yield from walk_judges(inner)


def judge_stats(judge: Judge) -> dict[str, dict[str, Any]]:
    """Counters of every judge in the tree that keeps some (calls, retries, invalid, cost, flip rate, cache hits),
    keyed by ``<position>:<judge_id>``; for manifests and the CLI."""
    out = {}
    for k, j in enumerate(walk_judges(judge)):
        stats = getattr(j, "stats", None)
        if stats is not None:
            out[f"{k}:{j.judge_id}"] = dict(stats.to_dict() if hasattr(stats, "to_dict") else stats)
    return out


def budget_exhausted(judge: Judge) -> bool:
    """True once any API judge in the tree has hit its budget: the run should stop rather than train on less."""
    return any(getattr(j, "budget_exhausted", False) for j in walk_judges(judge))
