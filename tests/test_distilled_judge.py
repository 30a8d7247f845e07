"""The distilled reward-model judge: trained on the tuning split only, judged by reward difference, gated on the
holdout, used as the cheap tier; and ``debias: average`` on the local judge under its own name.

One small distillation (the SQL sample's policy as base, one epoch over the bundled anchors' tuning pairs) is shared by
the module; everything else reuses it.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from rlaif.cli import main
from rlaif.config import load_config
from rlaif.judges import Comparison, make_judge
from rlaif.judges.combinators import TieredJudge
from rlaif.judges.fake import FakeJudge
from rlaif.judges.local import LocalJudge
from rlaif.judges.order_average import OrderAveragedJudge
from rlaif.judges.reward_model import RewardModelJudge
from rlaif.loop.project import Project
from rlaif.policy import model_hash
from rlaif.reward_model import distill_config, distill_reward_model, labelled_pairs
from store import Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "harbor_sql"
POLICY = SAMPLE / "policy"


def sample_config(tmp: Path, judge: dict) -> Path:
    """A copy of the SQL sample's loop config (its files beside it) with another judge."""
    proj = tmp / "proj"
    proj.mkdir(exist_ok=True)
    for name in ("rubric.yaml", "warehouse.sql", "anchors.jsonl", "train.jsonl", "eval.jsonl", "allowlist.txt"):
        shutil.copy(SAMPLE / name, proj / name)
    cfg = yaml.safe_load((SAMPLE / "loop.yaml").read_text())
    cfg["policy"]["path"] = str(POLICY)
    cfg["judge"] = judge
    (proj / "loop.yaml").write_text(yaml.safe_dump(cfg))
    return proj / "loop.yaml"


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """(store file, judge folder, CLI output): `rlaif judge distill` on the bundled anchors, oracle labels."""
    tmp = tmp_path_factory.mktemp("distill")
    db, out = tmp / "s.duckdb", tmp / "rm"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["--store", str(db), "judge", "distill", "--anchor-set", str(SAMPLE / "anchors.jsonl"),
                   "--annotators", "oracle", "--out", str(out), "--epochs", "1", "--device", "cpu",
                   "--no-progress"])
    assert rc == 0, buf.getvalue()
    return db, out, buf.getvalue()


def split_ids(db: Path) -> tuple[str, set[str], set[str]]:
    with Store(db) as store:
        set_id = store.anchors.list_sets()[0]["anchor_set_id"]
        tuning = {i["item_id"] for i in store.anchors.items(set_id, split="tuning")}
        holdout = {i["item_id"] for i in store.anchors.items(set_id, split="holdout")}
    return set_id, tuning, holdout


# ---------------------------------------------------------------------------------------------------------------------
# training


def test_distill_trains_on_tuning_pairs_only_and_records_what_it_learned_from(distilled):
    db, out, printed = distilled
    set_id, tuning, holdout = split_ids(db)
    meta = json.loads((out / "distill.json").read_text())
    with Store(db) as store:
        ab_pairs, labelled, ties = labelled_pairs(store, set_id, "oracle", "tuning")
    used = set(meta["train_item_ids"])
    assert used and used <= tuning and not used & holdout  # never a holdout item
    assert used == {p["prompt_id"] for p in ab_pairs}  # every A/B tuning label, no tie
    assert meta["n_label_pairs"] == len(ab_pairs) and meta["ties_skipped"] == ties > 0
    assert meta["holdout_items_excluded"] == len(holdout) > 0 and meta["n_holdout_pairs"] > 0
    assert meta["anchor_set_id"] == set_id and len(meta["tuning_hash"]) == 64
    assert meta["base_model_hash"] == model_hash(POLICY) and meta["from_judge"] is None
    assert meta["model_hash"] == model_hash(out / "model") and meta["n_trained"] == len(ab_pairs)  # none dropped
    assert f"trained on {len(ab_pairs)} labelled tuning pairs ({ties} ties skipped)" in printed
    assert "reward_model:" + meta["model_hash"][:12] in printed


def test_from_judge_adds_that_judges_stored_verdicts_but_never_on_holdout_prompts(distilled, tmp_path):
    db, _, _ = distilled
    set_id, tuning, holdout = split_ids(db)
    copy = tmp_path / "s.duckdb"
    shutil.copy(db, copy)
    with Store(copy) as store:
        items = store.anchors.items(set_id, split="tuning")
        ties = [i for i in items if i["item_id"] not in
                {p["prompt_id"] for p in labelled_pairs(store, set_id, "oracle", "tuning")[0]}]
        # the other judge's stored verdicts: a preference on two tie items, a tie, and one on a holdout item
        held = store.anchors.items(set_id, split="holdout")[0]
        rows = [{"item_id": ties[0]["item_id"], "winner": "a"}, {"item_id": ties[1]["item_id"], "winner": "b"},
                {"item_id": ties[2]["item_id"], "winner": "tie"}, {"item_id": held["item_id"], "winner": "a"}]
        store.anchors.save_verdicts([dict(r, judge_id="other", rubric_version="r", confidence=1.0, rationale="")
                                     for r in rows])
        result = distill_reward_model(store, set_id, tmp_path / "rm", POLICY, annotators="oracle",
                                      from_judge="other", limit=8, cfg=distill_config(epochs=1), device="cpu")
        with pytest.raises(LookupError, match="no stored verdicts"):
            distill_reward_model(store, set_id, tmp_path / "rm2", POLICY, from_judge="nobody", device="cpu")
    meta = result.metadata
    assert meta["from_judge"] == "other" and meta["n_judge_pairs"] == 2 and meta["n_label_pairs"] == 8
    assert meta["judge_skipped"] == 1  # the tie; the holdout verdict is not even read (tuning view)
    assert not set(meta["train_item_ids"]) & holdout


# ---------------------------------------------------------------------------------------------------------------------
# judging


def test_winner_by_reward_difference_tie_margin_and_confidence(distilled):
    _, out, _ = distilled
    judge = RewardModelJudge(str(out), tie_margin=0.1)
    v = judge.verdict(2.0, 1.0)
    assert v.winner == "a" and v.confidence == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert judge.verdict(-1.0, 0.5).winner == "b"
    tie = judge.verdict(1.0, 1.05)
    assert tie.winner == "tie" and tie.confidence == pytest.approx(1 / (1 + math.exp(-0.05)))
    assert RewardModelJudge(str(out)).verdict(1.0, 1.05).winner == "b"  # no margin: any difference decides
    assert judge.verdict(float("nan"), 1.0).winner == "invalid"


def test_judging_scores_both_sides_and_refuses_pairs_it_was_trained_on(distilled):
    db, out, _ = distilled
    set_id, _, _ = split_ids(db)
    with Store(db) as store:
        held = store.anchors.items(set_id, split="holdout")
        trained = labelled_pairs(store, set_id, "oracle", "tuning")[0][0]
    rubric = Project.from_config(load_config(SAMPLE / "loop.yaml")).rubric
    judge = make_judge("reward_model", options={"path": str(out)})
    comparisons = [Comparison(i["prompt"], i["response_a"], i["response_b"], i["reference"]) for i in held]
    verdicts = judge.compare(comparisons, rubric)
    ra = judge.rewards([c.prompt for c in comparisons], [c.a for c in comparisons])
    rb = judge.rewards([c.prompt for c in comparisons], [c.b for c in comparisons])
    for v, a, b in zip(verdicts, ra, rb):
        assert v.winner == ("a" if a > b else "b") and v.criteria["reward"]["a"] == pytest.approx(a, abs=1e-5)
    swapped = judge.compare([c.swapped() for c in comparisons], rubric)  # no position bias: scored side by side
    assert [s.unflipped().winner for s in swapped] == [v.winner for v in verdicts]
    seen = Comparison(trained["prompt"], trained["rejected"], trained["chosen"])
    assert judge.compare([seen], rubric)[0].winner == "invalid"
    in_sample = RewardModelJudge(str(out), judge_training_pairs=True).compare([seen], rubric)[0]
    assert in_sample.winner in ("a", "b")


def test_judge_id_is_the_models_identity_and_describe_says_what_it_was_trained_on(distilled, tmp_path):
    _, out, _ = distilled
    judge = RewardModelJudge(str(out))
    assert judge.judge_id == RewardModelJudge(str(out / "model")).judge_id  # the folder or the model in it
    d = judge.describe()
    assert d["trained_on"]["anchor_set_id"].startswith("as-") and len(d["trained_on"]["tuning_hash"]) == 64
    assert d["trained_on"]["base_model_hash"] == model_hash(POLICY)
    other = tmp_path / "rm"
    shutil.copytree(out, other)
    from safetensors.torch import load_file, save_file

    weights = other / "model" / "model.safetensors"
    tensors = load_file(weights)
    name = next(k for k in tensors if k.startswith("score"))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    assert RewardModelJudge(str(other)).judge_id != judge.judge_id


def test_bad_options_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="judge.options.path"):
        make_judge("reward_model")
    with pytest.raises(ValueError, match="no reward model"):
        make_judge("reward_model", options={"path": str(tmp_path)})
    with pytest.raises(ValueError, match="tie_margin"):
        make_judge("reward_model", options={"path": str(tmp_path), "tie_margin": -1})


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def test_kappa_cli_gates_the_distilled_judge_on_the_locked_holdout(distilled, tmp_path, capsys):
    """A judge trained on the tuning split is decided on the holdout it never saw: agreement with its own training
    labels would be recall, not calibration."""
    db, out, _ = distilled
    copy = tmp_path / "s.duckdb"
    shutil.copy(db, copy)
    config = sample_config(tmp_path, {"name": "reward_model", "options": {"path": str(out)}})
    meta = json.loads((out / "distill.json").read_text())
    capsys.readouterr()
    rc = main(["--store", str(copy), "kappa", "--judge", "reward_model", "--config", str(config),
               "--min-items", "5", "--json", "--resamples", "100"])
    printed = capsys.readouterr()
    assert printed.out, printed.err
    result = json.loads(printed.out)
    assert result["judge_id"] == f"reward_model:{meta['model_hash'][:12]}"
    assert result["split"] == "holdout" and "locked-holdout" in result["reason"]
    assert result["n"] == meta["holdout_items_excluded"] and result["n_invalid"] == 0  # none of it was trained on
    assert result["kappa"] is not None and rc == (0 if result["passed"] else 1)
    assert result["holdout"] is None  # it was decided on: no separate report


def test_distill_cli_errors_are_one_line(distilled, tmp_path, capsys):
    db, out, _ = distilled
    anchors = str(SAMPLE / "anchors.jsonl")
    cases = [
        (["--anchor-set", "as-nope", "--out", str(tmp_path / "a")], "neither an anchor set"),
        (["--anchor-set", anchors, "--out", str(out)], "is not empty"),
        (["--anchor-set", anchors, "--out", str(tmp_path / "b"), "--base", str(tmp_path)], "--base"),
        (["--anchor-set", anchors, "--out", str(tmp_path / "c"), "--from-judge", "nobody", "--annotators",
          "oracle"], "no stored verdicts"),
        (["--out", str(tmp_path / "d")], "--anchor-set"),
    ]
    for argv, expected in cases:
        capsys.readouterr()
        assert main(["--store", str(db), "judge", "distill", "--device", "cpu", "--no-progress", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit):
        main(["judge", "distill", "--out", str(tmp_path / "e"), "--limit", "0"])


# ---------------------------------------------------------------------------------------------------------------------
# tiered


def test_tiered_escalation_follows_the_threshold_and_the_verifier(distilled):
    db, out, _ = distilled
    set_id, _, _ = split_ids(db)
    with Store(db) as store:
        held = store.anchors.items(set_id, split="holdout")
    project = Project.from_config(load_config(SAMPLE / "loop.yaml"))
    comparisons = [Comparison(i["prompt"], i["response_a"], i["response_b"], i["reference"]) for i in held]
    cheap = RewardModelJudge(str(out))
    for threshold, share in ((1.0, 1.0), (0.0, 0.0)):
        expensive = FakeJudge("expensive", default="tie")
        tiered = TieredJudge(cheap, expensive, threshold)
        verdicts = tiered.compare(comparisons, project.rubric)
        assert tiered.stats["escalated"] == len(expensive.history) == share * len(comparisons)
        assert all(v.judge_id == ("expensive" if share else cheap.judge_id) for v in verdicts)

    # a confident cheap judge that always says A: the verifier sends every pair where only B passes upstairs
    with project.open(None, build_judge=False) as parts:
        options = {"cheap": "stub", "expensive": "verifier", "threshold": 0.0, "escalate_on_verifier": True}
        tiered = make_judge("tiered", options=options, verify=parts.verify)
        cheap_always_a = FakeJudge("always-a", default="a")
        tiered.cheap, tiered.inner_judges = cheap_always_a, (cheap_always_a, tiered.expensive)
        verdicts = tiered.compare(comparisons, project.rubric)
        hard = project.rubric.hard_verifiers

        def passes(text, ref):
            return all(parts.verify(text, ref).criteria().get(h, False) for h in hard)

        only_b = [i for i, c in enumerate(comparisons) if passes(c.b, c.reference) and not passes(c.a, c.reference)]
    assert only_b and tiered.stats["verifier_escalated"] == tiered.stats["escalated"] == len(only_b)
    assert all(verdicts[i].winner == "b" and verdicts[i].rationale.startswith("escalated") for i in only_b)
    assert "+verifier" in tiered.judge_id
    with pytest.raises(ValueError, match="escalate_on_verifier"):
        make_judge("tiered", options=options)  # no verifier to check with


# ---------------------------------------------------------------------------------------------------------------------
# debias: average on the local judge


def tiny_label_lm(path: Path) -> Path:
    """A tiny random GPT-2 whose tokenizer has " A" and " B" as tokens of their own (the local judge reads the first
    token of each label) and 4096 positions (a judge prompt in a tiny vocabulary is long): tiny_models' has neither."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from tests.tiny_models import TEXTS

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.train_from_iterator(TEXTS * 20 + ["Answer: A", "Answer: B"] * 200, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=4096,
                               bos_token_id=0, eos_token_id=0)
                    ).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_local_judge_takes_debias_average_under_its_own_name(tmp_path):
    path = tiny_label_lm(tmp_path / "tiny")
    rubric = Project.from_config(load_config(SAMPLE / "loop.yaml")).rubric
    judge = make_judge("local", options={"model_path": str(path), "debias": "average", "max_prompt_tokens": 4096})
    assert isinstance(judge, OrderAveragedJudge) and isinstance(judge.inner, LocalJudge)
    assert judge.judge_id == "order-averaged(local:tiny)"
    comparisons = [Comparison("total revenue West 2023?", "SELECT 1;", "SELECT 2;"),
                   Comparison("orders East 2022?", "SELECT SUM(orders) FROM v;", "nothing")]
    verdicts = judge.compare(comparisons, rubric)
    plain = LocalJudge(str(path), max_prompt_tokens=4096)
    ab = plain.compare(comparisons, rubric)
    ba = plain.compare([c.swapped() for c in comparisons], rubric)
    for v, x, y in zip(verdicts, ab, ba):
        assert v.is_valid, v.rationale
        p_first = (x.criteria["label_probability"]["a"] + y.criteria["label_probability"]["b"]) / 2
        assert v.criteria["label_probability"]["a"] == pytest.approx(p_first, abs=1e-4)
    assert judge.stats["averaged"] == 2
    with pytest.raises(ValueError, match="debias"):
        make_judge("local", options={"model_path": str(path), "debias": "median"})
