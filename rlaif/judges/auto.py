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

    judge = make_judge("auto", options={"prefer": ["anthropic", "local"]})   # local unless ANTHROPIC_API_KEY is set
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

from rlaif.core.fields import ConfigError, build_options, check, help_field
from rlaif.judges.base import WRAPPER_KEYS, BuildContext, Judge, NestedSpec
from rlaif.judges.pricing import JudgeCost

log = logging.getLogger(__name__)

API_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
DEFAULT_PREFER = ("anthropic", "openai", "local")
DEFAULT_MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}
KNOWN = ("anthropic", "openai", "local")


@dataclass
class AutoOptions:
    prefer: list[str] | str = help_field("Judges to try in order: the first that can run here is used.",
                                         factory=lambda: list(DEFAULT_PREFER))
    anthropic: dict[str, Any] | None = help_field("Options of the anthropic judge, if chosen.", None)
    openai: dict[str, Any] | None = help_field("Options of the openai judge, if chosen.", None)
    local: dict[str, Any] | None = help_field("Options of the local judge, if chosen.", None)

    def __post_init__(self):
        if isinstance(self.prefer, str):
            self.prefer = [self.prefer]
        check(isinstance(self.prefer, list) and bool(self.prefer) and all(isinstance(p, str) for p in self.prefer),
              "prefer", "must be a non-empty list of judge names, e.g. [anthropic, local]")
        unknown = [p for p in self.prefer if p not in KNOWN]
        check(not unknown, "prefer", f"unknown judge(s) {unknown}; auto chooses among {list(KNOWN)}")

    def judge_options(self, name: str) -> dict[str, Any]:
        """The options ``name`` gets when chosen (API judges get a default model)."""
        options = dict(getattr(self, name) or {})
        if name in DEFAULT_MODELS:
            options.setdefault("model", DEFAULT_MODELS[name])
        return options


@dataclass(frozen=True)
class AutoChoice:
    name: str  # the judge name picked from ``prefer``
    options: dict[str, Any]  # its options, as make_judge takes them
    reason: str  # one line for logs and the CLI: why this one


def choose_judge(options: Mapping[str, Any] | AutoOptions | None,
                 environ: Mapping[str, str] | None = None) -> AutoChoice:
    """Pick the judge ``auto`` stands for, without building it (so the choice is testable without a model).

    Wrapper options given next to ``prefer`` (debias, cache, ...) are merged into the chosen judge's options.
    """
    environ = os.environ if environ is None else environ
    wrappers: dict[str, Any] = {}
    if not isinstance(options, AutoOptions):
        raw = dict(options or {})
        wrappers = {k: raw.pop(k) for k in WRAPPER_KEYS if k in raw}
        options = build_options(AutoOptions, raw, "judge.options")
    skipped = []
    for name in options.prefer:
        sub = {**options.judge_options(name), **wrappers}
        if name == "local":
            return AutoChoice("local", sub, "no API key set; using the local judge" if skipped
                              else "local judge preferred")
        env = sub.get("api_key_env") or API_KEY_ENV[name]
        if environ.get(env) or sub.get("base_url"):
            why = f"{env} is set" if environ.get(env) else f"base_url {sub['base_url']} given"
            return AutoChoice(name, sub, f"{why}; using the {name} judge")
        skipped.append(env)
    raise ConfigError("judge.name", f"judge 'auto': none of {options.prefer} can run here (no "
                                    f"{', '.join(skipped)} in the environment); add 'local' to "
                                    f"judge.options.prefer or set a key")


class AutoJudge(Judge):
    """The ``auto`` kind: never a judge of its own. Building it builds the judge ``choose_judge`` picks (with the
    options under that judge's name); its cost estimate is that judge's, as the environment stands now."""

    name = "auto"
    Options = AutoOptions
    cache_by_default = True

    @classmethod
    def nested_specs(cls, options: AutoOptions) -> dict[str, Any]:
        return {name: {"name": name, "options": options.judge_options(name)} for name in options.prefer}

    @classmethod
    def _chosen(cls, options: AutoOptions, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> NestedSpec:
        choice = choose_judge(options, ctx.environ)
        log.info("judge auto: %s", choice.reason)
        return nested[choice.name]

    @classmethod
    def build(cls, options: AutoOptions, nested: Mapping[str, NestedSpec], ctx: BuildContext) -> Judge:
        return cls._chosen(options, nested, ctx).build(ctx)

    @classmethod
    def estimate_cost(cls, options: AutoOptions, n: int, prompt_tokens: int, output_tokens: int | None,
                      nested: Mapping[str, NestedSpec], ctx: BuildContext) -> JudgeCost:
        return cls._chosen(options, nested, ctx).estimate_cost(n, prompt_tokens, output_tokens, ctx)
