"""Run manifests: one content-addressed record per iteration, written last.

The manifest id is the hash of its content (timestamps excluded), so equal inputs and results give an equal id and a
tampered manifest no longer matches its id. ``parents`` lists the ids of the earlier iterations of the run: the
provenance chain. Written last (after checkpoint, pairs and evals are stored), its existence means the step finished.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

# not part of the content id: when it was written, and where the config's relative paths resolved on that machine
UNHASHED = ("manifest_id", "created_at", "config_base_dir")
PACKAGES = ("torch", "transformers", "trl", "peft", "datasets", "duckdb", "tokenizers", "rlaif-workbench")


from store.content_hash import content_hash  # one canonical encoding for every content-addressed id


def manifest_id_of(body: dict[str, Any]) -> str:
    return content_hash({k: v for k, v in body.items() if k not in UNHASHED})[:24]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_manifest(**fields: Any) -> dict[str, Any]:
    body = {"schema": "rlaif-manifest/1", **fields, "versions": fields.get("versions") or package_versions()}
    body["manifest_id"] = manifest_id_of(body)
    body["created_at"] = datetime.now(timezone.utc).isoformat()
    return body


def verify_manifest(body: dict[str, Any]) -> bool:
    """True when the manifest's id still matches its content."""
    return body.get("manifest_id") == manifest_id_of(body)


def write_manifest_file(body: dict[str, Any], directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"iteration-{body['iteration']:02d}-{body['manifest_id']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
    return path
