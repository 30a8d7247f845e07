"""Judge kinds by name, as the YAML config and the CLI's ``--judge`` spell them, and the one way to build a judge.

A judge spec is a name and options. The name picks the kind (a ``Judge`` subclass owning its ``Options`` dataclass,
its cost estimate and how it builds); the wrapper options any judge takes (``WrapperOptions``) wrap it, in the order
written once in :meth:`JudgeSpec.build`: ``debias`` (both orders) innermost, then ``verifier_first`` (hard checks
prune before the judge), then ``cache`` (the DuckDB verdict cache, outermost so a re-run makes no call at all).
:func:`parse_spec` checks a spec completely, nested judges included, without building anything: no API key is
needed to validate a config or estimate its cost.

    judge:
      name: anthropic       # stub | biased | verifier | anthropic | openai | local | reward_model | auto | ensemble | tiered
      options: {model: claude-haiku-4-5, concurrency: 16, rpm: 1000, budget_usd: 5, debias: true, cache: true}

    judge:
      name: tiered
      options:
        threshold: 0.7
        cheap: {name: local, options: {debias: average}}     # or distilled: {name: reward_model, options: {path: DIR}}
        expensive: {name: openai, options: {model: gpt-4o, base_url: "http://localhost:8000/v1"}}

    spec = parse_spec("anthropic", {"model": "claude-haiku-4-5", "cache": True}); spec.estimate_cost(600, 900).usd
    judge = make_judge("anthropic", options={"model": "claude-haiku-4-5", "cache": True}, store=store)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from rlaif.core.fields import ConfigError, build_options
from rlaif.judges.auto import AutoJudge
from rlaif.judges.base import WRAPPER_KEYS, BuildContext, Judge, WrapperOptions
from rlaif.judges.cache import CachedJudge
from rlaif.judges.combinators import DebiasedJudge, EnsembleJudge, TieredJudge, VerifierFirstJudge
from rlaif.judges.llm import AnthropicJudge, OpenAIJudge
from rlaif.judges.local import LocalJudge
from rlaif.judges.order_average import OrderAveragedJudge
from rlaif.judges.pricing import JudgeCost
from rlaif.judges.reward_model import RewardModelJudge
from rlaif.judges.simple import BiasedJudge, StubJudge
from rlaif.judges.verifier import VerifierJudge, require_verifier

KINDS: dict[str, type[Judge]] = {cls.name: cls for cls in (  # type: ignore[misc]
    VerifierJudge, StubJudge, BiasedJudge, AnthropicJudge, OpenAIJudge, LocalJudge, RewardModelJudge, AutoJudge,
    EnsembleJudge, TieredJudge)}
JUDGE_NAMES = tuple(KINDS)


@dataclass(frozen=True)
class JudgeSpec:
    """A checked judge spec: its kind, its options object, its wrappers and its nested specs (ensemble members,
    tiers, auto's candidates). ``where`` is the config path it came from, for error messages."""

    name: str
    kind: type[Judge]
    options: Any
    wrappers: WrapperOptions
    nested: dict[str, "JudgeSpec"] = field(default_factory=dict)
    where: str = "judge"
    given_wrappers: frozenset[str] = frozenset()  # the wrapper options the spec spelled out

    def build(self, ctx: BuildContext | None = None, *, verify=None, store=None) -> Judge:
        """The ready judge, wrapped as its options ask (the one place that knows the wrapper order)."""
        ctx = ctx or BuildContext(verify=verify, store=store)
        judge = self.kind.build(self.options, self.nested, ctx)
        w = self.wrappers
        if w.debias == "average":
            judge = OrderAveragedJudge(judge, float(w.average_tie_margin))
        elif w.debias:
            judge = DebiasedJudge(judge)
        if w.verifier_first:
            judge = VerifierFirstJudge(VerifierJudge(require_verifier(ctx, f"{self.where}.options.verifier_first")),
                                       judge)
        if w.cache:
            if ctx.store is None:
                raise ConfigError(f"{self.where}.options.cache", "needs the store (make_judge(..., store=store))")
            judge = CachedJudge(judge, ctx.store)
        return judge

    def estimate_cost(self, n: int, prompt_tokens: int, output_tokens: int | None = None,
                      ctx: BuildContext | None = None) -> JudgeCost:
        """USD for ``n`` comparisons, before anything is built; an upper bound where verdicts decide (cache hits,
        escalations, pruning)."""
        calls = n * (2 if self.wrappers.debias else 1)
        cost = self.kind.estimate_cost(self.options, calls, prompt_tokens, output_tokens, self.nested,
                                       ctx or BuildContext())
        if self.wrappers.cache or self.wrappers.verifier_first:
            cost = dataclasses.replace(cost, upper_bound=True)
        return cost

    def spends_api(self, ctx: BuildContext | None = None) -> bool:
        """Whether building and running this judge may cost API money (an unknown price counts as spending)."""
        return self.estimate_cost(1, 100, ctx=ctx).spends

    def with_cache_default(self) -> "JudgeSpec":
        """The spec with ``cache: true`` unless its options said otherwise, for kinds that cache by default."""
        if not self.kind.cache_by_default or "cache" in self.given_wrappers:
            return self
        return dataclasses.replace(self, wrappers=dataclasses.replace(self.wrappers, cache=True))


def nested_spec(value: Any, where: str) -> tuple[str, dict[str, Any]]:
    """A nested judge spec: ``{name: ..., options: {...}}`` or just a name."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConfigError(where, "must be a judge name or a mapping with name (and options)")
    unknown = set(value) - {"name", "options"}
    if unknown:
        raise ConfigError(where, f"unknown field(s) {sorted(unknown)}; a nested judge has name and options")
    options = value.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.options", "must be a mapping")
    return value["name"], options


def parse_spec(name: str, options: Mapping[str, Any] | None = None, where: str = "judge") -> JudgeSpec:
    """Check a judge spec completely (kind, options, wrappers, nested judges); ConfigError names the field."""
    kind = KINDS.get(name)
    if kind is None:
        raise ConfigError(f"{where}.name", f"unknown judge {name!r}; one of {', '.join(JUDGE_NAMES)}")
    raw = dict(options or {})
    given = {k: raw.pop(k) for k in WRAPPER_KEYS if k in raw}
    wrappers = build_options(WrapperOptions, given, f"{where}.options")
    if raw and not dataclasses.fields(kind.Options):
        raise ConfigError(f"{where}.options", f"judge {name!r} takes no options (besides "
                                              f"{', '.join(WRAPPER_KEYS)}); got {sorted(raw)}")
    opts = build_options(kind.Options, raw, f"{where}.options")
    nested = {}
    for path, value in kind.nested_specs(opts).items():
        sub_where = f"{where}.options.{path}"
        sub_name, sub_options = nested_spec(value, sub_where)
        nested[path] = parse_spec(sub_name, sub_options, sub_where)
    return JudgeSpec(name, kind, opts, wrappers, nested, where, frozenset(given))


def make_judge(name: str, *, verify=None, options: Mapping[str, Any] | None = None, store=None,
               environ: Mapping[str, str] | None = None) -> Judge:
    """Build a judge. ``verify`` is the task's verifier (``verifier``, ``verifier_first``); ``store`` backs ``cache``."""
    return parse_spec(name, options).build(BuildContext(verify=verify, store=store, environ=environ))
