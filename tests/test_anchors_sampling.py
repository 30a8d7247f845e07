"""Sampling an anchor set from a stored run: stratified by slice, preferring pairs judges disagree or are unsure on."""

from collections import Counter

import pytest

from rlaif.anchors.labelling import present
from rlaif.anchors.sampling import allocate, collect_candidate_pairs, sample_anchor_set
from store import Store

RUN = "run-test"


def _fake_run(store, n_easy=60, n_hard=20):
    """A run with one judged pair per prompt; every 4th prompt's pair is doubtful in some way."""
    prompts = ([{"id": f"e{i:03d}", "prompt": f"easy {i}", "reference": f"SELECT {i};", "cohort": "easy"}
                for i in range(n_easy)]
               + [{"id": f"h{i:03d}", "prompt": f"hard {i}", "reference": None, "cohort": "hard"}
                  for i in range(n_hard)])
    dataset_id = store.datasets.import_prompts("train", prompts, None)
    store.runs.create(RUN, "t", {"seed": 0}, "cfg", "stub", "rv", dataset_id, dataset_id)
    candidates, judgements, pairs = [], [], []
    doubtful = set()
    for k, p in enumerate(prompts):
        a, b = f"{p['id']}-c0", f"{p['id']}-c1"
        candidates += [{"candidate_id": a, "run_id": RUN, "iteration": 1, "prompt_id": p["id"], "text": f"good {k}"},
                       {"candidate_id": b, "run_id": RUN, "iteration": 1, "prompt_id": p["id"], "text": f"bad {k}"}]
        kind = k % 8
        if kind == 0:  # two judges disagree
            doubtful.add(p["id"])
            judgements += [{"run_id": RUN, "iteration": 1, "prompt_id": p["id"], "candidate_a": a, "candidate_b": b,
                            "judge_id": "j1", "winner": "a", "confidence": 0.9},
                           {"run_id": RUN, "iteration": 1, "prompt_id": p["id"], "candidate_a": b, "candidate_b": a,
                            "judge_id": "j2", "winner": "a", "confidence": 0.9}]
        elif kind == 4:  # a tie, dropped as such
            doubtful.add(p["id"])
            judgements.append({"run_id": RUN, "iteration": 1, "prompt_id": p["id"], "candidate_a": a,
                               "candidate_b": b, "judge_id": "j1", "winner": "tie", "confidence": 0.5})
        else:  # confident and unanimous
            judgements.append({"run_id": RUN, "iteration": 1, "prompt_id": p["id"], "candidate_a": a,
                               "candidate_b": b, "judge_id": "j1", "winner": "a", "confidence": 1.0})
        kept = kind != 4
        pairs.append({"run_id": RUN, "iteration": 1, "prompt_id": p["id"], "prompt": f"Q: {p['prompt']}",
                      "chosen": f"good {k}", "rejected": f"bad {k}", "chosen_candidate": a, "rejected_candidate": b,
                      "kept": kept, "drop_reason": None if kept else "tie", "confidence": 1.0 if kept else 0.5})
    store.candidates.add_many(candidates)
    store.judgements.add_many(judgements)
    store.pairs.add_many(pairs)
    return doubtful


def test_allocation_is_proportional_with_at_least_one_each():
    assert allocate({"easy": 60, "hard": 20}, 20) == {"easy": 15, "hard": 5}
    assert allocate({"a": 98, "b": 1, "c": 1}, 10) == {"a": 8, "b": 1, "c": 1}
    assert allocate({"a": 3, "b": 2}, 10) == {"a": 3, "b": 2}
    assert sum(allocate({"a": 7, "b": 5, "c": 3}, 6).values()) == 6


def test_candidate_pairs_carry_the_judges_doubts():
    with Store(":memory:") as store:
        _fake_run(store)
        pool = {p.prompt_id: p for p in collect_candidate_pairs(store, RUN)}
        flip, tie, sure = pool["e000"], pool["e004"], pool["e001"]
        assert flip.uncertainty() == (1.0, ["judges disagree"]) and len(flip.verdicts) == 2
        assert tie.uncertainty()[0] >= 0.75 and "tie" in tie.uncertainty()[1] and "dropped: tie" in tie.uncertainty()[1]
        assert sure.uncertainty() == (0.0, [])


def test_sampling_is_stratified_disagreement_driven_and_seeded():
    with Store(":memory:") as store:
        doubtful = _fake_run(store)
        result = sample_anchor_set(store, RUN, n=20, seed=0, holdout_fraction=0.2)
        items = store.anchors.items(result.anchor_set_id)
        assert result.n_items == 20 and result.n_holdout == 4
        assert Counter(i["slice"] for i in items) == {"easy": 15, "hard": 5}
        picked = {i["extra"]["prompt_id"] for i in items}
        # 20 of 80 prompts are doubtful (25%); the weighted draw favours them heavily
        assert len(picked & doubtful) >= 14
        assert len(picked - doubtful) >= 1  # certain pairs still get a chance
        first = items[0]
        assert first["source"] == f"run:{RUN}" and first["extra"]["run_id"] == RUN
        words = sorted(t.split() for t in (first["response_a"], first["response_b"]))
        assert [w[0] for w in words] == ["bad", "good"] and words[0][1] == words[1][1]  # one prompt's two candidates
        assert first["prompt"].startswith(("easy", "hard"))  # the raw prompt, not the policy's template
        assert all(i["reference"] == f"SELECT {int(i['extra']['prompt_id'][1:])};" for i in items
                   if i["slice"] == "easy")
        # the annotator still sees nothing of the sampling evidence
        shown = present(store, first["item_id"], "ana")
        assert "uncertainty" not in repr(shown) and "judge" not in repr(shown)
        # seeded: the same seed samples the same set, another seed another one
        assert sample_anchor_set(store, RUN, n=20, seed=0, holdout_fraction=0.2).anchor_set_id == \
            result.anchor_set_id
        other = sample_anchor_set(store, RUN, n=20, seed=1, holdout_fraction=0.2)
        assert {i["extra"]["prompt_id"] for i in store.anchors.items(other.anchor_set_id)} != picked


def test_sampling_refuses_unknown_runs():
    with Store(":memory:") as store:
        with pytest.raises(ValueError, match="no run"):
            sample_anchor_set(store, "nope")
