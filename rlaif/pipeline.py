"""The RLAIF loop: sample → verify → judge → build pairs → train (DPO+LoRA) → evaluate → regression gate → manifest.

The pipeline is the one Python API behind the CLI and the workbench pages. It records everything in the store as it
goes (candidates, judgements, pairs kept and dropped, evals) and writes each iteration's manifest last. Progress goes
to a callback (the CLI draws bars, the workbench writes job rows); it never prints.

    pipeline = RLAIFPipeline(cfg, store=Store("rlaif.duckdb"))
    for it in pipeline.run(load_prompts(train), load_prompts(eval)):
        print(it.iteration, it.eval_result.metric("execution_accuracy"), it.regressed)
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rlaif.anchors.gate_config import run_calibration_gate
from rlaif.config import RunConfig
from rlaif.datasets import PromptRecord
from rlaif.evaluation import EvalResult, evaluate_outputs
from rlaif.gates import GateDecision, recommend_best, regression_gate
from rlaif.judges import Comparison, Judge, make_judge
from rlaif.judges.registry import budget_exhausted, judge_stats
from rlaif.judges.strategies import RankingTask, rank_candidates
from rlaif.manifest import build_manifest, content_hash, write_manifest_file
from rlaif.pairs import PairDecision, decide_pair
from rlaif.policy import configure_cpu_threads, greedy, quiet_library_progress, load_policy, model_hash, sample_candidates
from rlaif.rubric import DEFAULT_RUBRIC, Rubric, load_rubric


class RunCancelled(Exception):
    """The run's cancel event was set; the run is recorded as cancelled."""


class BudgetExhausted(Exception):
    """The judge's per-run budget ran out; the run stops cleanly (recorded as stopped, nothing trained on a partial
    set of verdicts)."""


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # sample | verify | judge | pairs | train | eval | gate | done
    step: int
    total: int
    iteration: int
    message: str = ""


@dataclass
class IterationResult:
    iteration: int
    preference_count: int
    dropped: dict[str, int]
    eval_result: EvalResult
    gate: GateDecision
    manifest: dict[str, Any]
    model_path: str
    judge_calls: int = 0
    train_loss: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        return self.gate.regressed


def pairs_hash(rows: Sequence[dict[str, Any]]) -> str:
    """Dataset hash of the training pairs: exactly what DPO saw, in order."""
    return content_hash([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])


def _short(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


class RLAIFPipeline:
    def __init__(self, config: RunConfig, *, store, judge: Judge | None = None, rubric: Rubric | None = None,
                 progress: Callable[[ProgressEvent], None] | None = None, cancel: threading.Event | None = None):
        self.cfg = config
        self.store = store
        self.rubric = rubric or (load_rubric(config.resolve(config.rubric)) if config.rubric else DEFAULT_RUBRIC)
        self.progress = progress or (lambda event: None)
        self.cancel = cancel or threading.Event()
        self._judge = judge
        self.verifier = None
        self.run_id: str | None = None

    # -----------------------------------------------------------------------------------------------------------------
    # set-up

    def _open_verifier(self, stack: ExitStack):
        vc = self.cfg.verifier
        if vc.kind != "sql":
            return None
        from rlaif.sql_sandbox import SqlSandbox
        from rlaif.sql_verifier import SqlVerifier

        sandbox = stack.enter_context(SqlSandbox(Path(self.cfg.resolve(vc.warehouse)),
                                                 allowed_relations=list(vc.allowed_relations), timeout_s=vc.timeout_s))
        return SqlVerifier(sandbox)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled("run cancelled")

    def _emit(self, stage: str, step: int, total: int, iteration: int, message: str = "") -> None:
        self.progress(ProgressEvent(stage, step, total, iteration, message))

    # -----------------------------------------------------------------------------------------------------------------
    # the loop

    def run(self, train: Sequence[PromptRecord], eval: Sequence[PromptRecord]) -> Iterator[IterationResult]:
        cfg = self.cfg
        configure_cpu_threads()
        quiet_library_progress()
        train = list(train)[: cfg.data.max_train_prompts] if cfg.data.max_train_prompts else list(train)
        eval = list(eval)[: cfg.data.max_eval_prompts] if cfg.data.max_eval_prompts else list(eval)
        with ExitStack() as stack:
            self.verifier = self._open_verifier(stack)
            verify = self.verifier.verify if self.verifier else None
            judge = self._judge or make_judge(cfg.judge.name, verify=verify, options=cfg.judge.options,
                                              store=self.store)
            self.judge = judge
            rubric_version = self.store.rubrics.save(self.rubric.name, self.rubric.to_dict())
            assert rubric_version == self.rubric.version, "store and engine must hash rubrics the same way"
            train_id = self.store.datasets.import_prompts(f"{cfg.name}-train", [p.to_dict() for p in train],
                                                          cfg.data.train)
            eval_id = self.store.datasets.import_prompts(f"{cfg.name}-eval", [p.to_dict() for p in eval], cfg.data.eval)
            base_path = str(cfg.resolve(cfg.policy.path))
            base_hash = model_hash(base_path)
            self.run_id = run_id = "run-" + _short(cfg.config_hash(), train_id, eval_id, rubric_version,
                                                   judge.judge_id, base_hash, time.time_ns())
            self.store.runs.create(run_id, cfg.name, cfg.to_dict(), cfg.config_hash(), judge.judge_id,
                                   rubric_version, train_id, eval_id)
            self.context = dict(config_hash=cfg.config_hash(), train_dataset_id=train_id, eval_dataset_id=eval_id,
                                rubric_version=rubric_version, judge=judge.describe(), base_model_hash=base_hash)
            # the calibration gate runs before any training: a judge that disagrees with people trains nothing
            self.calibration = run_calibration_gate(self.store, cfg.calibration, judge, self.rubric,
                                                    resolve=cfg.resolve, seed=cfg.seed)
            self.context["calibration_gate"] = (self.calibration.to_dict() if self.calibration is not None
                                                else {"decision": "not_configured"})
            try:
                yield from self._iterations(train, eval, base_path, base_hash, verify, judge)
            except RunCancelled:
                self.store.runs.set_status(run_id, "cancelled")
                raise
            except BudgetExhausted as err:
                self.store.runs.set_status(run_id, "stopped", error=str(err))
                return
            except BaseException as err:  # record the failure, then let it propagate
                self.store.runs.set_status(run_id, "failed", error=f"{type(err).__name__}: {err}")
                raise

    def _iterations(self, train, eval, base_path, base_hash, verify, judge) -> Iterator[IterationResult]:
        cfg, run_id = self.cfg, self.run_id
        out_root = Path(cfg.output_dir) / run_id
        history: list[tuple[int, float]] = []
        parents: list[str] = []
        model_path, current_hash = base_path, base_hash

        for iteration in range(0, cfg.loop.iterations + 1):
            self._check_cancel()
            self.store.iterations.start(run_id, iteration)
            start_hash = current_hash
            timings: dict[str, float] = {}
            kept_rows: list[dict[str, Any]] = []
            dropped: dict[str, int] = {}
            calls, train_loss, train_info = 0, None, None
            if iteration > 0 and self.calibration is not None and not self.calibration.passed:
                self.store.iterations.finish(run_id, iteration, status="calibration_blocked", model_path=model_path,
                                             model_hash=current_hash, regressed=False,
                                             gate_decision="calibration_blocked", pairs_kept=0, pairs_dropped=0)
                self.store.runs.set_status(run_id, "stopped", error=f"calibration gate: {self.calibration.reason}")
                return
            if iteration > 0:
                kept_rows, dropped, calls = self._make_pairs(iteration, train, model_path, verify, judge, timings)
                if not kept_rows:
                    self.store.iterations.finish(run_id, iteration, status="no_pairs", model_path=model_path,
                                                 model_hash=current_hash, regressed=False, gate_decision="no_pairs",
                                                 pairs_kept=0, pairs_dropped=sum(dropped.values()))
                    self.store.runs.set_status(run_id, "stopped", error="no preference pairs survived the filters")
                    return
                self._check_cancel()
                t0 = time.perf_counter()
                train_info = self._train(iteration, model_path, kept_rows, out_root)
                timings["train"] = time.perf_counter() - t0
                if train_info.cancelled:
                    raise RunCancelled("run cancelled during training")
                model_path, current_hash, train_loss = train_info.model_path, train_info.model_hash, train_info.train_loss

            t0 = time.perf_counter()
            result = self._evaluate(iteration, model_path, eval, verify)
            timings["eval"] = time.perf_counter() - t0
            self.store.evals.add_many(result.to_store_rows(run_id, iteration))
            value = result.metric(cfg.loop.primary_metric, cfg.loop.gate_cohort)
            gate = regression_gate(history, iteration, value, cfg.loop.regression_tolerance)
            history.append((iteration, value))
            self._emit("gate", 1, 1, iteration, gate.decision)

            manifest = build_manifest(
                kind="baseline" if iteration == 0 else "iteration",
                run_id=run_id, iteration=iteration, parents=list(parents), **self.context,
                dataset_hash=pairs_hash(kept_rows) if kept_rows else None,
                pairs={"kept": len(kept_rows), "dropped": dropped},
                model_hash=current_hash, parent_model_hash=start_hash if iteration > 0 else None,
                model_path=model_path,
                metrics=result.summary(), primary_metric=cfg.loop.primary_metric, gate=gate.to_dict(),
                judge_calls=calls, judge_stats=judge_stats(self.judge), train_loss=train_loss, train_steps=train_info.steps if train_info else 0,
                seeds={"base": cfg.seed, "training": cfg.seed + iteration,
                       "sampling": "sha256(base:iteration:sample_index:batch_index)[:8]"},
                config=cfg.to_dict(),
            )
            self.store.iterations.finish(run_id, iteration, status="regressed" if gate.regressed else "completed",
                                         model_path=model_path, model_hash=current_hash, regressed=gate.regressed,
                                         gate_decision=gate.decision, pairs_kept=len(kept_rows),
                                         pairs_dropped=sum(dropped.values()))
            best_iteration, _ = recommend_best(history)
            self.store.runs.set_recommended(run_id, best_iteration)
            # written last: a manifest's existence means the iteration completed
            write_manifest_file(manifest, out_root / "manifests")
            self.store.manifests.write(manifest["manifest_id"], run_id, iteration, manifest)
            parents.append(manifest["manifest_id"])
            yield IterationResult(iteration, len(kept_rows), dropped, result, gate, manifest, model_path, calls,
                                  train_loss, timings)
            if gate.regressed:
                self.store.runs.set_status(run_id, "stopped", error=None)
                return
        self.store.runs.set_status(run_id, "completed")

    # -----------------------------------------------------------------------------------------------------------------
    # stages

    def _make_pairs(self, iteration: int, train: Sequence[PromptRecord], model_path: str, verify, judge: Judge,
                    timings: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, int], int]:
        cfg, run_id = self.cfg, self.run_id
        t0 = time.perf_counter()
        policy = load_policy(model_path, device=cfg.policy.device, prompt_template=cfg.policy.prompt_template,
                             gguf_file=cfg.policy.gguf_file)
        samples = sample_candidates(
            policy, [p.prompt for p in train], n=cfg.sampling.candidates_per_prompt,
            temperatures=cfg.sampling.temperatures, seed=cfg.seed, iteration=iteration,
            batch_size=cfg.sampling.batch_size, max_new_tokens=cfg.policy.max_new_tokens, top_p=cfg.sampling.top_p,
            on_batch=lambda d, t: self._emit("sample", d, t, iteration), should_stop=self.cancel.is_set)
        timings["sample"] = time.perf_counter() - t0
        prefix = policy.completion_prefix
        rendered = [policy.render(p.prompt) for p in train]
        del policy

        # verify: hard checks on every candidate, once per distinct text
        t0 = time.perf_counter()
        checks: list[list[dict[str, bool] | None]] = []
        cand_rows = []
        verified: dict[tuple[str, str], Any] = {}
        for k, (p, group) in enumerate(zip(train, samples)):
            self._check_cancel()
            group_checks: list[dict[str, bool] | None] = []
            for s in group:
                ver = None
                if verify is not None and p.reference is not None:
                    key = (s.text, p.reference)
                    if key not in verified:
                        verified[key] = verify(s.text, p.reference)
                    ver = verified[key]
                c = dict(ver.criteria()) if ver is not None else None
                group_checks.append(c)
                if c is not None and hasattr(judge, "prime"):
                    judge.prime(s.text, p.reference, c)
                cand_rows.append({
                    "candidate_id": _short(run_id, iteration, p.id, s.sample_index), "run_id": run_id,
                    "iteration": iteration, "prompt_id": p.id, "text": s.text, "temperature": s.temperature,
                    "seed": s.seed, "sample_index": s.sample_index, "n_tokens": s.n_tokens,
                    "verification": ver.to_dict() if ver is not None else None,
                    "score": self.rubric.score(c) if c is not None else None})
            checks.append(group_checks)
            if (k + 1) % 25 == 0 or k + 1 == len(train):
                self._emit("verify", k + 1, len(train), iteration)
        self.store.candidates.add_many(cand_rows)
        timings["verify"] = time.perf_counter() - t0

        # judge: rank each prompt's candidates (all prompts' comparisons of a round batched together)
        t0 = time.perf_counter()
        tasks = [RankingTask(p.prompt, [s.text for s in group], p.reference, p.id) for p, group in zip(train, samples)]
        rankings = rank_candidates(
            judge, tasks, self.rubric, self.cfg.judge.ranking, confirm=True, chunk=256,
            on_round=lambda d, t: (self._check_cancel(), self._emit("judge", d, t, iteration)))
        judgement_rows = []
        for p, task, ranking in zip(train, tasks, rankings):
            for m in ranking.matches:
                v = m.verdict
                comparison = Comparison(p.prompt, task.texts[m.i], task.texts[m.j], p.reference, p.id)
                judgement_rows.append({
                    "judgement_id": _short(run_id, iteration, p.id, m.i, m.j), "run_id": run_id,
                    "iteration": iteration, "prompt_id": p.id, "candidate_a": _short(run_id, iteration, p.id, m.i),
                    "candidate_b": _short(run_id, iteration, p.id, m.j), "judge_id": v.judge_id or judge.judge_id,
                    "winner": v.winner, "confidence": v.confidence, "rationale": v.rationale,
                    "criteria": v.criteria, "raw_reply": v.raw_reply, "tokens_in": v.tokens_in,
                    "tokens_out": v.tokens_out, "cost_usd": v.cost_usd, "latency_ms": v.latency_ms,
                    "cache_key": judge.cache_key(comparison, self.rubric) if hasattr(judge, "cache_key") else None})
        self.store.judgements.add_many(judgement_rows)
        calls = sum(r.calls for r in rankings)
        timings["judge"] = time.perf_counter() - t0
        if budget_exhausted(judge):
            raise BudgetExhausted("judge budget exhausted: stopping before training on a partial set of verdicts")

        # pairs: one decision per prompt, kept or dropped with its reason
        kept, dropped, pair_rows = [], {}, []
        for k, (p, group) in enumerate(zip(train, samples)):
            texts = [s.text for s in group]
            ranking = rankings[k]
            d: PairDecision = decide_pair(texts, ranking.matches, self.cfg.pairs, self.rubric, checks[k],
                                          ranked=(ranking.chosen, ranking.rejected)
                                          if self.cfg.judge.ranking != "round_robin" else None)
            row = {
                "pair_id": _short(run_id, iteration, p.id, "pair"), "run_id": run_id, "iteration": iteration,
                "prompt_id": p.id, "prompt": rendered[k],
                "chosen": prefix + texts[d.chosen] if d.chosen is not None else None,
                "rejected": prefix + texts[d.rejected] if d.rejected is not None else None,
                "chosen_candidate": _short(run_id, iteration, p.id, d.chosen) if d.chosen is not None else None,
                "rejected_candidate": _short(run_id, iteration, p.id, d.rejected) if d.rejected is not None else None,
                "chosen_score": d.scores[d.chosen] if d.chosen is not None else None,
                "rejected_score": d.scores[d.rejected] if d.rejected is not None else None,
                "kept": d.kept, "drop_reason": d.drop_reason, "source": "rlaif",
                "rubric_version": self.rubric.version, "judge_id": judge.judge_id, "confidence": d.confidence}
            pair_rows.append(row)
            if d.kept:
                kept.append(row)
            else:
                dropped[d.drop_reason] = dropped.get(d.drop_reason, 0) + 1
        self.store.pairs.add_many(pair_rows)
        self._emit("pairs", len(kept), len(train), iteration, f"{len(kept)} kept, {sum(dropped.values())} dropped")
        return kept, dropped, calls

    def _train(self, iteration: int, model_path: str, rows: list[dict[str, Any]], out_root: Path):
        from rlaif.training import train_dpo

        return train_dpo(model_path, rows, self.cfg.training, out_root / f"iteration-{iteration:02d}",
                         seed=self.cfg.seed + iteration, device=self.cfg.policy.device,
                         on_step=lambda s, t: self._emit("train", s, t, iteration), cancel=self.cancel)

    def _evaluate(self, iteration: int, model_path: str, eval: Sequence[PromptRecord], verify) -> EvalResult:
        cfg = self.cfg
        policy = load_policy(model_path, device=cfg.policy.device, prompt_template=cfg.policy.prompt_template,
                             gguf_file=cfg.policy.gguf_file)
        outputs = greedy(policy, [p.prompt for p in eval], batch_size=cfg.eval.batch_size,
                         max_new_tokens=cfg.policy.max_new_tokens,
                         on_batch=lambda d, t: self._emit("eval", d, t, iteration))
        return evaluate_outputs(outputs, eval, verify=verify, rubric=self.rubric)
