"""An approved, exported pair set is what TRL expects: it loads with ``datasets`` and trains a DPO step."""

from __future__ import annotations

import json

import pytest
import torch

from rlaif.export import ExportFilters, ExportMismatch, approve, approved_bytes, export_approved
from store import Store
from tests.tiny_models import build_tiny_gpt2
from tests.workbench_fixtures import seed_run


@pytest.fixture
def exported(tmp_path):
    with Store(tmp_path / "x.duckdb") as store:
        run_id = seed_run(store, pairs=12)
        approval = approve(store, ExportFilters(run_id, iteration=1, min_confidence=0.6), approved_by="ana")
        paths = export_approved(store, approval["approval_id"], tmp_path / "exports")
        yield store, approval, paths


def test_approval_records_who_when_and_exactly_which_pairs(exported):
    store, approval, paths = exported
    assert approval["approved_by"] == "ana" and approval["approved_at"] is not None
    rows = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    assert len(rows) == approval["n_pairs"] > 0
    assert all(r["judge_confidence"] >= 0.6 for r in rows)  # the filter held
    kept = {p["pair_id"] for p in store.pairs.page(run_id=approval["run_id"], kept=True, limit=1000)}
    assert {r["pair_id"] for r in rows} <= kept  # dropped pairs are never exported
    assert list(rows[0])[:3] == ["prompt", "chosen", "rejected"]
    for column in ("source", "rubric_version", "teacher_model", "judge_confidence", "run_id", "iteration",
                   "pair_id", "approval_id", "approved_by"):
        assert column in rows[0]
    assert approved_bytes(store, approval["approval_id"])["jsonl"] == paths["jsonl"].read_bytes()


def test_export_refuses_when_the_selection_changed_since_approval(exported):
    store, approval, _ = exported
    extra = {"pair_id": "run-seed-1-zzz", "run_id": approval["run_id"], "iteration": 1, "prompt_id": "q9",
             "prompt": "p", "chosen": "a", "rejected": "b", "kept": True, "confidence": 0.9}
    store.pairs.add_many([extra])
    with pytest.raises(ExportMismatch, match="approve the selection again"):
        export_approved(store, approval["approval_id"], "unused")


@pytest.mark.parametrize("kind", ["json", "parquet"])
def test_exported_file_loads_with_datasets_and_trains_one_dpo_step(exported, tmp_path, kind):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    _, approval, paths = exported
    dataset = load_dataset(kind, data_files=str(paths["jsonl" if kind == "json" else "parquet"]), split="train")
    assert dataset.num_rows == approval["n_pairs"]
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names)

    model_dir = build_tiny_gpt2(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                     learning_rate=1e-2, max_length=64, use_cpu=True, report_to=[], save_strategy="no",
                     logging_steps=1, disable_tqdm=True, dataloader_num_workers=0)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 1
    assert any(not torch.equal(before[n], p.detach()) for n, p in trainer.model.named_parameters())
