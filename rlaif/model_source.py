"""Where a model comes from: a local folder, a GGUF file, or a Hugging Face hub id — resolved in one place.

Why one place: five load sites (policy, DPO training, local judge, reward model, SmolLM2 conversion) each used
``local_files_only=True`` on a folder. Users keep models in folders, as single ``.gguf`` files, or in the HF cache
under a hub id (``org/name``). ``resolve_source`` turns any of these into a local folder (plus ``gguf_file``) before
anything loads, so every site keeps loading from disk with ``local_files_only=True`` and offline runs never touch the
network. A hub id resolves to its snapshot folder in the HF cache; offline and not cached it is ONE clear error
naming the config field, not a transformers traceback.

    src = resolve_source("HuggingFaceTB/SmolLM2-135M", field="policy.path"); model = Auto...(src.folder, **src.kwargs)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif.core.fields import ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")  # org/name, nothing more


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: ``folder`` is always a local directory; ``kind`` says how the user named it."""

    kind: str  # "local", "gguf" or "hub"
    folder: str
    gguf_file: str | None = None
    hub_id: str | None = None
    revision: str | None = None  # what the user pinned (branch, tag or commit); None means "main"
    commit: str | None = None  # the snapshot's commit hash, from the cache folder's name

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained(self.folder, ...)``: always local, plus the GGUF file if any."""
        return {"local_files_only": True, **({"gguf_file": self.gguf_file} if self.gguf_file else {})}

    def to_record(self) -> dict[str, Any]:
        """What a manifest records: enough to fetch the same weights again."""
        rec: dict[str, Any] = {"kind": self.kind, "path": self.folder}
        if self.gguf_file:
            rec["gguf_file"] = self.gguf_file
        if self.kind == "hub":
            rec.update(hub_id=self.hub_id, revision=self.revision or "main", commit=self.commit)
        return rec


def hub_offline() -> str | None:
    """The variable that makes the hub offline (``HF_HUB_OFFLINE=1``), or None when online."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name}={os.environ[name]}"
    return None


def cached_snapshot(hub_id: str, revision: str | None = None) -> Path | None:
    """The snapshot folder of ``hub_id`` in the local HF cache (``HF_HOME``/``HF_HUB_CACHE``), or None.

    ``try_to_load_from_cache`` follows ``refs/<revision>`` (or takes a commit hash) without any network call.
    """
    from huggingface_hub import try_to_load_from_cache

    # read the cache location now, not at huggingface_hub's import: HF_HOME set later (a test, a job) still counts
    cache_dir = os.environ.get("HF_HUB_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None)
    hit = try_to_load_from_cache(hub_id, "config.json", cache_dir=cache_dir, revision=revision)
    if isinstance(hit, str) and Path(hit).is_file():
        return Path(hit).parent
    return None


def _download(hub_id: str, revision: str | None) -> Path:
    """Online: fetch the snapshot once into the HF cache, as ``from_pretrained`` would (untested here: no network)."""
    from huggingface_hub import snapshot_download

    folder = snapshot_download(hub_id, revision=revision, ignore_patterns=[
        "*.onnx", "onnx/*", "*.h5", "*.msgpack", "*.ot", "*.gguf", "tf_model*", "flax_model*", "*.tflite"])
    return Path(folder)


def resolve_source(path: str | Path, *, revision: str | None = None, gguf_file: str | None = None,
                   field: str = "policy.path") -> ModelSource:
    """A folder → local; a ``.gguf`` file → its folder + gguf_file; ``org/name`` → its HF cache snapshot.

    ``field`` is the config field named in errors. Offline (``HF_HUB_OFFLINE=1``) a hub id loads only from the cache.
    """
    text = str(path)
    p = Path(text).expanduser()
    if p.is_dir():
        return ModelSource("local", str(p), gguf_file)
    if p.suffix == ".gguf" and p.is_file():
        return ModelSource("gguf", str(p.parent), p.name)
    if p.suffix == ".gguf" or not HUB_ID.match(text):
        raise ConfigError(field, f"not found: {text} (a model folder, a .gguf file, or a hub id org/name)")
    folder = cached_snapshot(text, revision)
    if folder is None:
        offline = hub_offline()
        if offline:
            raise ConfigError(field, f"{text!r} is not a folder here and the hub is offline ({offline}); download "
                                     f"it once online or point {field} at a local folder")
        folder = _download(text, revision)
    return ModelSource("hub", str(folder), gguf_file, hub_id=text, revision=revision, commit=folder.name)



def describe_source(path: str | Path, *, revision: str | None = None, gguf_file: str | None = None) -> ModelSource:
    """The source of an already resolved local path, for manifests: a folder inside the HF cache
    (``models--org--name/snapshots/<commit>``) is recorded as its hub id and commit, a .gguf file as such."""
    p = Path(path)
    if p.suffix == ".gguf":
        return ModelSource("gguf", str(p.parent), p.name)
    if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
        hub_id = p.parent.parent.name[len("models--"):].replace("--", "/")
        return ModelSource("hub", str(p), gguf_file, hub_id=hub_id, revision=revision, commit=p.name)
    return ModelSource("local", str(p), gguf_file)
