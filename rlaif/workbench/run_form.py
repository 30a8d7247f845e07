"""The Runs form's checks: every field a user types is checked as it is entered, and each problem is one line kept
beside its own field, so a typo never takes the rest of the page (Start, jobs, charts) down with it.

Why a module without Streamlit: the checks are plain functions of the form's values and the filesystem/environment,
so they are tested without a page, and the page only draws ``check.errors[field]`` under each widget. Nothing here
downloads or loads a model: a policy is checked with the same resolver the run uses (``rlaif.model_source``), and a
hub id not in the cache is a note (it downloads at start), not an error. API keys are only looked up by name in the
environment; their values are never read into a message or stored.

    check = check_run_form(project_path, values); check.errors.get("data.train"); check.ready
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.config import ConfigError, RunConfig
from rlaif.datasets import load_prompts
from rlaif.judges.auto import API_KEY_ENV
from rlaif.model_source import HUB_ID, cached_snapshot, hub_offline
from rlaif.workbench.projects import run_config

#: The form's fields (dotted config paths), in the order the page shows them; ``judge.options.model`` is the API
#: judges' model field. A check's error for a field the form does not show is reported under ``FORM_WIDE``.
FORM_FIELDS = ("policy.path", "data.train", "data.eval", "data.max_train_prompts", "output_dir", "judge.name",
               "judge.options.model", "loop.iterations", "sampling.candidates_per_prompt", "loop.regression_tolerance",
               "training.loss_type")
FORM_WIDE = "form"
API_JUDGES = tuple(API_KEY_ENV)  # anthropic, openai: judges that call a paid API with a key from the environment


@dataclass
class FormCheck:
    """The outcome of checking a form: the config it makes (None when it does not validate), errors by field, notes
    (fine but worth saying), and the training prompt count for the cost estimate."""

    config: RunConfig | None
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    n_train: int | None = None

    @property
    def ready(self) -> bool:
        return self.config is not None and not self.errors

    def reason(self) -> str:
        """Why Start is disabled, in one line: the first problem and how many there are."""
        if not self.errors:
            return ""
        name, text = next(iter(self.errors.items()))
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"Fix {label_of(name)} first: {text}{more}"


LABELS = {"policy.path": "Policy (path or hub id)", "data.train": "Training prompts", "data.eval": "Held-out prompts",
          "data.max_train_prompts": "Max training prompts", "output_dir": "Output folder", "judge.name": "Judge",
          "judge.options.model": "Judge model", "loop.iterations": "Iterations",
          "sampling.candidates_per_prompt": "Candidates per prompt", "loop.regression_tolerance":
          "Regression tolerance", "training.loss_type": "Loss terms", FORM_WIDE: "the config"}


def label_of(name: str) -> str:
    return f"“{LABELS.get(name, name)}”"


def form_defaults(cfg: RunConfig) -> dict[str, Any]:
    """The form's values as the project's config has them (what "Reset to the config" restores)."""
    return {
        "policy.path": cfg.policy.path, "data.train": cfg.data.train, "data.eval": cfg.data.eval,
        "data.max_train_prompts": cfg.data.max_train_prompts or 0, "output_dir": cfg.output_dir,
        "judge.name": cfg.judge.name, "judge.options.model": str(cfg.judge.options.get("model") or ""),
        "loop.iterations": cfg.loop.iterations, "sampling.candidates_per_prompt": cfg.sampling.candidates_per_prompt,
        "loop.regression_tolerance": float(cfg.loop.regression_tolerance),
        "training.loss_type": list(cfg.training.loss_type),
    }


def overrides_of(values: dict[str, Any], base: RunConfig) -> dict[str, Any]:
    """The form's values as ``run_config`` overrides. The judge's options are the config's own when the judge is the
    config's judge; another judge starts from no options (the config's belong to its own kind), plus the model."""
    out = {k: v for k, v in values.items() if k not in ("judge.options.model", "data.max_train_prompts")}
    out["data.max_train_prompts"] = values.get("data.max_train_prompts") or None
    for text_field in ("policy.path", "data.train", "data.eval", "output_dir"):
        if isinstance(out.get(text_field), str):
            out[text_field] = out[text_field].strip()
    name = values.get("judge.name") or base.judge.name
    options = dict(base.judge.options) if name == base.judge.name else {}
    model = str(values.get("judge.options.model") or "").strip()
    if model:
        options["model"] = model
    elif name != base.judge.name:
        options.pop("model", None)
    out["judge.options"] = options
    return out


# ---------------------------------------------------------------------------------------------------------------------
# one check per typed field; each returns an error line or None


def check_prompts(cfg: RunConfig, dotted: str) -> tuple[str | None, int | None]:
    """A prompts file that exists and parses (DatasetError names the file and line)."""
    raw = getattr(cfg.data, dotted.split(".")[1])
    try:
        return None, len(load_prompts(cfg.resolve(raw)))
    except (ValueError, OSError) as err:  # DatasetError is a ValueError
        return str(err), None


def check_policy(cfg: RunConfig) -> tuple[str | None, str | None]:
    """(error, note) for ``policy.path``: a folder, a .gguf file, or a hub id (cached, or downloadable at start)."""
    text = str(cfg.policy.path)
    path = Path(cfg.resolve(text)).expanduser()
    if path.is_dir() or (path.suffix == ".gguf" and path.is_file()):
        return None, None
    if path.suffix == ".gguf" or not HUB_ID.match(text):
        return f"not found: {path} (a model folder, a .gguf file, or a hub id org/name)", None
    if cached_snapshot(text, cfg.policy.revision) is not None:
        return None, f"{text} from the Hugging Face cache"
    offline = hub_offline()
    if offline:
        return (f"{text!r} is not a folder here and the hub is offline ({offline}); download it once online or "
                f"point it at a local folder"), None
    return None, f"{text} is not in the local cache: it downloads when the run starts"


def check_output_dir(cfg: RunConfig) -> str | None:
    """An output folder that is a folder (or can be made under an existing, writable parent)."""
    path = Path(cfg.resolve(cfg.output_dir)).expanduser()
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        return f"{path}: no existing folder above it"
    return None if os.access(parent, os.W_OK) else f"cannot create {path}: {parent} is not writable"


def check_api_judge(cfg: RunConfig) -> dict[str, str]:
    """An API judge needs a model name and its key in the environment (named, never shown)."""
    name, options = cfg.judge.name, cfg.judge.options
    if name not in API_JUDGES:
        return {}
    errors = {}
    if not options.get("model"):
        errors["judge.options.model"] = f"the {name} judge needs a model name (e.g. " \
                                        f"{'claude-haiku-4-5' if name == 'anthropic' else 'gpt-4o-mini'})"
    env = options.get("api_key_env") or API_KEY_ENV[name]
    keyless_ok = name == "openai" and options.get("base_url")  # a self-hosted compatible server needs no key
    if not os.environ.get(env) and not keyless_ok:
        errors["judge.name"] = f"set {env} in the environment of the workbench server to use the {name} judge"
    return errors


def check_run_form(config_path: str | Path, values: dict[str, Any]) -> FormCheck:
    """Every problem of the form at once, each under its field; the config when there is none.

    A field the config refuses (ConfigError names it) is set back to the config's value and the rest checked again,
    so a bad iteration count does not hide a typo in the prompts path."""
    base = run_config(config_path)
    defaults, values = form_defaults(base), dict(values)
    config_errors: dict[str, str] = {}
    cfg = None
    for _ in range(len(FORM_FIELDS) + 1):
        try:
            cfg = run_config(config_path, overrides_of(values, base))
            break
        except ConfigError as err:
            where = err.field_path if err.field_path in FORM_FIELDS else FORM_WIDE
            if where in config_errors or where == FORM_WIDE:
                config_errors.setdefault(where, str(err) if where == FORM_WIDE else err.problem)
                return FormCheck(None, config_errors)
            config_errors[where] = err.problem
            values[where] = defaults[where]
            if where == "judge.options.model":  # the model belongs to the chosen judge: check the rest with the config's
                values["judge.name"] = defaults["judge.name"]
        except ValueError as err:
            return FormCheck(None, {**config_errors, FORM_WIDE: str(err)})
    if cfg is None:
        return FormCheck(None, config_errors)
    check = FormCheck(cfg, dict(config_errors))
    policy_error, policy_note = check_policy(cfg)
    if policy_error:
        check.errors.setdefault("policy.path", policy_error)
    if policy_note:
        check.notes["policy.path"] = policy_note
    train_error, check.n_train = check_prompts(cfg, "data.train")
    if train_error:
        check.errors.setdefault("data.train", train_error)
    eval_error, _ = check_prompts(cfg, "data.eval")
    if eval_error:
        check.errors.setdefault("data.eval", eval_error)
    output_error = check_output_dir(cfg)
    if output_error:
        check.errors.setdefault("output_dir", output_error)
    for name, text in check_api_judge(cfg).items():
        check.errors.setdefault(name, text)
    check.errors = {k: check.errors[k] for k in sorted(check.errors, key=_form_order)}
    if config_errors:
        check.config = None  # the config Start would launch is not the one the form shows
    return check


def _form_order(name: str) -> int:
    return FORM_FIELDS.index(name) if name in FORM_FIELDS else len(FORM_FIELDS)
