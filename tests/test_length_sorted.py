"""``sampling.length_sorted``: the loop batches prompts of similar token length together when asked. Candidates stay
in prompt order with their seeds, sampling stays reproducible, greedy evaluation gives the same answers as unsorted
batching, batches carry less padding, and the manifest's seed rule says the batches were sorted."""

from __future__ import annotations

from rlaif.datasets import load_prompts
from rlaif.loop import stages
from rlaif.loop.project import Project
from rlaif.policy import _batches, load_policy
from store import Store
from tests.test_pipeline import make_config, run_all, tiny  # noqa: F401  (fixture)


def _padding(policy, prompts, batch_size, length_sorted):
    lengths = [len(policy.tokenizer(policy.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    return sum(max(lengths[j] for j in b) - lengths[k] for b in _batches(policy, prompts, batch_size, length_sorted)
               for k in b)


def test_length_sorted_sampling_keeps_order_and_reproduces_and_greedy_is_unchanged(tiny, tmp_path):
    plain = make_config(tiny, tmp_path, sampling={"batch_size": 4})
    cfg = make_config(tiny, tmp_path, sampling={"batch_size": 4, "length_sorted": True})
    prompts = load_prompts(cfg.resolve(cfg.data.train))[:12]
    policy = load_policy(tiny, prompt_template=cfg.policy.prompt_template)
    texts = [p.prompt for p in prompts]
    assert _padding(policy, texts, 4, True) < _padding(policy, texts, 4, False)  # what sorting is for

    first, again = (stages.sample(policy, prompts, cfg, iteration=1) for _ in range(2))
    assert [[(s.text, s.seed) for s in row] for row in first.samples] == \
        [[(s.text, s.seed) for s in row] for row in again.samples]  # reproducible
    assert all(s.prompt_index == k for k, row in enumerate(first.samples) for s in row)  # prompt order kept
    assert [len(row) for row in first.samples] == [cfg.sampling.candidates_per_prompt] * len(prompts)

    rubric = Project.from_config(cfg).rubric
    sorted_eval, _ = stages.evaluate(policy, prompts, cfg, None, rubric)
    plain_eval, _ = stages.evaluate(policy, prompts, plain, None, rubric)
    assert [r["output"] for r in sorted_eval.rows] == [r["output"] for r in plain_eval.rows]


def test_the_manifest_says_the_batches_were_length_sorted(tiny, tmp_path):
    cfg = make_config(tiny, tmp_path, sampling={"length_sorted": True}, loop={"iterations": 1},
                      data={"max_train_prompts": 4, "max_eval_prompts": 4})
    with Store(":memory:") as store:
        _, results = run_all(cfg, store)
    assert results[-1].manifest["seeds"]["sampling"].endswith("over batches of length-sorted prompts")
    assert results[-1].manifest["config"]["sampling"]["length_sorted"] is True
