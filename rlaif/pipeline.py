"""The RLAIF loop: sample → verify → judge → build pairs → calibration gate → train (DPO+LoRA) → evaluate →
regression gate → manifest, iteration after iteration.

The pipeline is the one Python API behind the CLI and the workbench pages. It records everything in the store as it
goes (candidates, judgements, pairs kept and dropped, evals, held-out outputs) and writes each iteration's manifest
last, so a manifest's existence means its iteration finished. That is also what makes a crash cheap: ``resume``
continues after the last manifest, redoing only the unfinished iteration, whose judge verdicts come back from the
judge cache. Progress goes to a callback (the CLI draws bars, the workbench writes job rows); it never prints.

    pipeline = RLAIFPipeline(cfg, store=Store("rlaif.duckdb"))
    for it in pipeline.run(load_prompts(train), load_prompts(eval)):
        print(it.iteration, it.eval_result.metric("execution_accuracy"), it.regressed)
    RLAIFPipeline.for_run(store, run_id).resume()           # after a crash
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rlaif.anchors.gate_config import resolve_anchor_set, run_calibration_gate
from rlaif.config import RunConfig
from rlaif.datasets import PromptRecord, records_from_store
from rlaif.evaluation import EvalResult, evaluate_outputs
from rlaif.gates import GateDecision, recommend_best, regression_gate
from rlaif.human_blend import blend_rows
from rlaif.judges import Comparison, Judge, make_judge
from rlaif.judges.registry import budget_exhausted, judge_stats
from rlaif.judges.strategies import RankingTask, rank_candidates
from rlaif.manifest import build_manifest, content_hash, write_manifest_file
from rlaif.monitoring import disagreement_rate, win_rate
from rlaif.pairs import PairDecision, decide_pair
from rlaif.policy import (configure_cpu_threads, greedy, load_policy, model_hash, quiet_library_progress,
                          sample_candidates)
from rlaif.rubric import DEFAULT_RUBRIC, Rubric, load_rubric

FAULT_ENV = "RLAIF_FAULT_AT"
EXPENSIVE_JUDGES = ("anthropic", "openai", "local", "auto", "ensemble", "tiered")


class RunCancelled(Exception):
    """The run's cancel event was set; the run is recorded as cancelled."""


class BudgetExhausted(Exception):
    """The judge's per-run budget ran out; the run stops cleanly (recorded as stopped, nothing trained on a partial
    set of verdicts)."""


class NothingToResume(Exception):
    """The run already finished (completed, stopped by a gate) or does not exist."""


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # calibrate | sample | verify | judge | pairs | train | eval | gate | done
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
    monitoring: dict[str, Any] = field(default_factory=dict)
    blended: int = 0

    @property
    def regressed(self) -> bool:
        return self.gate.regressed


@dataclass
class LoopState:
    """Where the loop stands: the model to continue from and what earlier iterations produced."""

    start: int
    model_path: str
    model_hash: str
    history: list[tuple[int, float]] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    metrics: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    outputs: dict[int, dict[str, str]] = field(default_factory=dict)  # iteration -> prompt_id -> eval output


def pairs_hash(rows: Sequence[dict[str, Any]]) -> str:
    """Dataset hash of the training pairs: exactly what DPO saw, in order."""
    return content_hash([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])


def _short(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def _maybe_crash(stage: str, iteration: int, step: int) -> None:
    """Crash-recovery testing: ``RLAIF_FAULT_AT=stage:iteration[:step]`` SIGKILLs this process at that point."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if parts[0] == stage and int(parts[1]) == iteration and step >= (int(parts[2]) if len(parts) > 2 else 1):
        os.kill(os.getpid(), signal.SIGKILL)


class RLAIFPipeline:
    def __init__(self, config: RunConfig, *, store, judge: Judge | None = None, eval_judge: Judge | None = None,
                 rubric: Rubric | None = None, progress: Callable[[ProgressEvent], None] | None = None,
                 cancel: threading.Event | None = None):
        self.cfg = config
        self.store = store
        self.rubric = rubric or (load_rubric(config.resolve(config.rubric)) if config.rubric else DEFAULT_RUBRIC)
        self.progress = progress or (lambda event: None)
        self.cancel = cancel or threading.Event()
        self._judge = judge
        self._eval_judge = eval_judge
        self.verifier = None
        self.judge: Judge | None = None
        self.eval_judge: Judge | None = None
        self.calibration = None
        self.anchor_set_id: str | None = None
        self.run_id: str | None = None
        self.context: dict[str, Any] = {}

    @classmethod
    def for_run(cls, store, run_id: str, **kwargs) -> "RLAIFPipeline":
        """A pipeline for a stored run, configured exactly as the run was (for resume)."""
        run = store.runs.get(run_id)
        if run is None:
            raise NothingToResume(f"no run {run_id!r} in the store")
        pipeline = cls(RunConfig.from_record(run["config"]), store=store, **kwargs)
        pipeline.run_id = run_id
        return pipeline

    # -----------------------------------------------------------------------------------------------------------------
    # entry points

    def run(self, train: Sequence[PromptRecord], eval: Sequence[PromptRecord]) -> Iterator[IterationResult]:
        """A new run: iteration 0 evaluates the untouched policy, then up to ``loop.iterations`` training rounds."""
        cfg = self.cfg
        train = list(train)[: cfg.data.max_train_prompts] if cfg.data.max_train_prompts else list(train)
        eval = list(eval)[: cfg.data.max_eval_prompts] if cfg.data.max_eval_prompts else list(eval)
        self.run_id = None
        yield from self._session(train, eval, state_for=lambda base_path, base_hash: LoopState(0, base_path, base_hash))

    def resume(self) -> Iterator[IterationResult]:
        """Continue a crashed, failed or cancelled run after its last finished iteration."""
        run = self.store.runs.get(self.run_id)
        if run is None:
            raise NothingToResume(f"no run {self.run_id!r} in the store")
        if run["status"] in ("completed", "stopped"):
            raise NothingToResume(f"run {self.run_id} is {run['status']}; nothing to resume")
        train = records_from_store(self.store.datasets.prompts(run["train_dataset_id"]))
        eval = records_from_store(self.store.datasets.prompts(run["eval_dataset_id"]))
        yield from self._session(train, eval, state_for=self._resume_state)

    def replay(self, manifest: dict[str, Any], parent_model_path: str) -> IterationResult:
        """Re-run the single iteration a manifest describes, from its parent model, as a new run (for reproduce)."""
        run = self.store.runs.get(manifest["run_id"])
        if run is None:
            raise NothingToResume(f"the manifest's run {manifest['run_id']} is not in this store")
        train = records_from_store(self.store.datasets.prompts(manifest["train_dataset_id"]))
        eval = records_from_store(self.store.datasets.prompts(manifest["eval_dataset_id"]))
        iteration = manifest["iteration"]
        earlier = [m["body"] for m in self.store.manifests.for_run(manifest["run_id"])
                   if m["body"]["iteration"] < iteration]

        def state_for(base_path, base_hash):
            state = LoopState(iteration, parent_model_path, model_hash(parent_model_path))
            for body in earlier:
                state.history.append((body["iteration"], body["gate"]["value"]))
                state.metrics[body["iteration"]] = body["metrics"]
                state.outputs[body["iteration"]] = self._stored_outputs(manifest["run_id"], body["iteration"])
            return state

        self.run_id = None
        results = list(self._session(train, eval, state_for=state_for, only_one=True, name=f"reproduce "
                                     f"{manifest['manifest_id']}"))
        if not results:
            raise RuntimeError("the replayed iteration produced no result (see the run's error)")
        return results[0]

    # -----------------------------------------------------------------------------------------------------------------
    # set-up shared by run, resume and replay

    def _open_verifier(self, stack: ExitStack):
        vc = self.cfg.verifier
        if vc.kind == "none":
            return None
        from rlaif.verifiers import open_verifier

        return stack.enter_context(open_verifier(vc.kind, vc.verifier_options(), base_dir=Path(self.cfg.base_dir)))

    def _make_judge(self, name: str, options: dict[str, Any], verify) -> Judge:
        # expensive judges are always cached: a resumed or reproduced iteration must not pay twice for a verdict
        if name in EXPENSIVE_JUDGES:
            options = {"cache": True, **options}
        return make_judge(name, verify=verify, options=options, store=self.store)

    def _session(self, train, eval, *, state_for, only_one: bool = False, name: str | None = None):
        cfg = self.cfg
        configure_cpu_threads()
        quiet_library_progress()
        cfg.output_dir = str(Path(cfg.output_dir).resolve())
        with ExitStack() as stack:
            self.verifier = self._open_verifier(stack)
            verify = self.verifier.verify if self.verifier else None
            judge = self._judge or self._make_judge(cfg.judge.name, cfg.judge.options, verify)
            self.judge = judge
            if self._eval_judge is not None or cfg.eval_judge.name:
                self.eval_judge = self._eval_judge or self._make_judge(cfg.eval_judge.name, cfg.eval_judge.options,
                                                                       verify)
            rubric_version = self.store.rubrics.save(self.rubric.name, self.rubric.to_dict())
            assert rubric_version == self.rubric.version, "store and engine must hash rubrics the same way"
            train_id = self.store.datasets.import_prompts(f"{cfg.name}-train", [p.to_dict() for p in train],
                                                          cfg.data.train)
            eval_id = self.store.datasets.import_prompts(f"{cfg.name}-eval", [p.to_dict() for p in eval], cfg.data.eval)
            base_path = str(cfg.policy_path())
            base_hash = model_hash(base_path)
            if self.run_id is None:
                self.run_id = "run-" + _short(cfg.config_hash(), train_id, eval_id, rubric_version, judge.judge_id,
                                              base_hash, time.time_ns())
                self.store.runs.create(self.run_id, name or cfg.name, cfg.to_record(), cfg.config_hash(),
                                       judge.judge_id, rubric_version, train_id, eval_id)
            else:
                self.store.runs.set_status(self.run_id, "running")
            run_id = self.run_id
            self.context = dict(config_hash=cfg.config_hash(), train_dataset_id=train_id, eval_dataset_id=eval_id,
                                rubric_version=rubric_version, judge=judge.describe(),
                                eval_judge=self.eval_judge.describe() if self.eval_judge else None,
                                base_model_hash=base_hash)
            try:
                if cfg.calibration.anchor_set:
                    self.anchor_set_id = resolve_anchor_set(self.store, cfg.calibration.anchor_set, cfg.resolve,
                                                            cfg.calibration.holdout_fraction)
                # the calibration gate runs before any training: a judge that disagrees with people trains nothing
                self._emit("calibrate", 0, 1, 0)
                self.calibration = run_calibration_gate(self.store, cfg.calibration, judge, self.rubric,
                                                        resolve=cfg.resolve, seed=cfg.seed)
                self.context["calibration_gate"] = (self.calibration.to_dict() if self.calibration is not None
                                                    else {"decision": "not_configured"})
                state = state_for(base_path, base_hash)
                yield from self._iterations(train, eval, state, verify, judge, only_one)
            except RunCancelled:
                self.store.runs.set_status(run_id, "cancelled")
                raise
            except BudgetExhausted as err:
                self.store.runs.set_status(run_id, "stopped", error=str(err))
                return
            except BaseException as err:  # record the failure, then let it propagate
                self.store.runs.set_status(run_id, "failed", error=f"{type(err).__name__}: {err}")
                raise

    def _stored_outputs(self, run_id: str, iteration: int) -> dict[str, str]:
        return {pid: row["output"] for pid, row in self.store.eval_outputs.for_iteration(run_id, iteration).items()}

    def _resume_state(self, base_path: str, base_hash: str) -> LoopState:
        bodies = sorted((m["body"] for m in self.store.manifests.for_run(self.run_id)), key=lambda b: b["iteration"])
        if not bodies:
            state = LoopState(0, base_path, base_hash)
        else:
            last = bodies[-1]
            if last["gate"]["regressed"] or last["iteration"] >= self.cfg.loop.iterations:
                raise NothingToResume(f"run {self.run_id} already finished at iteration {last['iteration']}")
            state = LoopState(last["iteration"] + 1, last["model_path"], last["model_hash"])
            for body in bodies:
                state.history.append((body["iteration"], body["gate"]["value"]))
                state.parents.append(body["manifest_id"])
                state.metrics[body["iteration"]] = body["metrics"]
            for k in {0, last["iteration"]}:
                state.outputs[k] = self._stored_outputs(self.run_id, k)
            if model_hash(state.model_path) != state.model_hash:
                raise RuntimeError(f"checkpoint {state.model_path} no longer matches its manifest's model hash")
        self.store.purge_iteration(self.run_id, state.start)
        return state

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled("run cancelled")

    def _emit(self, stage: str, step: int, total: int, iteration: int, message: str = "") -> None:
        self.progress(ProgressEvent(stage, step, total, iteration, message))
        _maybe_crash(stage, iteration, step)

    # -----------------------------------------------------------------------------------------------------------------
    # the loop

    def _iterations(self, train, eval, state: LoopState, verify, judge, only_one: bool) -> Iterator[IterationResult]:
        cfg, run_id = self.cfg, self.run_id
        last = state.start if only_one else cfg.loop.iterations
        for iteration in range(state.start, last + 1):
            self._check_cancel()
            result = self._run_iteration(iteration, state, train, eval, verify, judge)
            if result is None:
                return
            yield result
            if result.gate.regressed:
                self.store.runs.set_status(run_id, "stopped", error=None)
                return
        self.store.runs.set_status(run_id, "completed")

    def _run_iteration(self, iteration: int, state: LoopState, train, eval, verify, judge) -> IterationResult | None:
        cfg, run_id = self.cfg, self.run_id
        out_root = Path(cfg.output_dir) / run_id
        self.store.iterations.start(run_id, iteration)
        start_hash = state.model_hash
        timings: dict[str, float] = {}
        kept_rows: list[dict[str, Any]] = []
        dropped: dict[str, int] = {}
        calls, train_loss, train_info, blended = 0, None, None, 0
        if iteration > 0 and self.calibration is not None and not self.calibration.passed:
            self._finish_early(iteration, state, "calibration_blocked", f"calibration gate: {self.calibration.reason}")
            return None
        if iteration > 0:
            kept_rows, dropped, calls = self._make_pairs(iteration, train, state.model_path, verify, judge, timings)
            rlaif_rows = len(kept_rows)
            kept_rows += self._blend(iteration, rlaif_rows)
            blended = len(kept_rows) - rlaif_rows
            if not rlaif_rows:
                self._finish_early(iteration, state, "no_pairs", "no preference pairs survived the filters",
                                   dropped=sum(dropped.values()))
                return None
            self._check_cancel()
            t0 = time.perf_counter()
            train_info = self._train(iteration, state.model_path, kept_rows, out_root)
            timings["train"] = time.perf_counter() - t0
            if train_info.cancelled:
                raise RunCancelled("run cancelled during training")
            state.model_path, state.model_hash, train_loss = (train_info.model_path, train_info.model_hash,
                                                              train_info.train_loss)

        t0 = time.perf_counter()
        result, anchor_outputs = self._evaluate(iteration, state.model_path, eval, verify)
        timings["eval"] = time.perf_counter() - t0
        state.outputs[iteration] = {r["prompt_id"]: r["output"] for r in result.rows}
        monitoring = self._monitor(iteration, state, eval, judge, anchor_outputs)
        for metric, value in monitoring.get("metrics", {}).items():
            result.metrics["all"][metric] = value
        self.store.evals.add_many(result.to_store_rows(run_id, iteration))
        self.store.eval_outputs.add_many([{"run_id": run_id, "iteration": iteration, "prompt_id": r["prompt_id"],
                                           "cohort": r["cohort"], "output": r["output"], "n_tokens": r["n_tokens"],
                                           "checks": r.get("checks")} for r in result.rows])
        value = result.metric(cfg.loop.primary_metric, cfg.loop.gate_cohort)
        gate = regression_gate(state.history, iteration, value, cfg.loop.regression_tolerance)
        state.history.append((iteration, value))
        self._emit("gate", 1, 1, iteration, gate.decision)

        metrics = result.summary()
        manifest = build_manifest(
            kind="baseline" if iteration == 0 else "iteration",
            run_id=run_id, iteration=iteration, parents=list(state.parents), **self.context,
            dataset_hash=pairs_hash(kept_rows) if kept_rows else None,
            pairs={"kept": len(kept_rows), "dropped": dropped, "blended": blended,
                   "sources": _count_sources(kept_rows)},
            model_hash=state.model_hash, parent_model_hash=start_hash if iteration > 0 else None,
            model_path=state.model_path,
            metrics=metrics, deltas=_deltas(metrics, state.metrics, iteration),
            monitoring={k: v for k, v in monitoring.items() if k != "metrics"},
            primary_metric=cfg.loop.primary_metric, gate_cohort=cfg.loop.gate_cohort, gate=gate.to_dict(),
            judge_calls=calls, judge_stats=judge_stats(judge), train_loss=train_loss,
            train_steps=train_info.steps if train_info else 0,
            seeds={"base": cfg.seed, "training": cfg.seed + iteration,
                   "sampling": "sha256(base:iteration:sample_index:batch_index)[:8]"},
            config=cfg.to_dict(), config_base_dir=str(Path(cfg.base_dir).resolve()),
        )
        state.metrics[iteration] = metrics
        self.store.iterations.finish(run_id, iteration, status="regressed" if gate.regressed else "completed",
                                     model_path=state.model_path, model_hash=state.model_hash,
                                     regressed=gate.regressed, gate_decision=gate.decision,
                                     pairs_kept=len(kept_rows), pairs_dropped=sum(dropped.values()))
        best_iteration, _ = recommend_best(state.history)
        self.store.runs.set_recommended(run_id, best_iteration)
        # written last: a manifest's existence means the iteration completed
        write_manifest_file(manifest, out_root / "manifests")
        self.store.manifests.write(manifest["manifest_id"], run_id, iteration, manifest)
        state.parents.append(manifest["manifest_id"])
        return IterationResult(iteration, len(kept_rows), dropped, result, gate, manifest, state.model_path, calls,
                               train_loss, timings, monitoring, blended)

    def _finish_early(self, iteration: int, state: LoopState, status: str, reason: str, dropped: int = 0) -> None:
        self.store.iterations.finish(self.run_id, iteration, status=status, model_path=state.model_path,
                                     model_hash=state.model_hash, regressed=False, gate_decision=status,
                                     pairs_kept=0, pairs_dropped=dropped)
        self.store.runs.set_status(self.run_id, "stopped", error=reason)

    # -----------------------------------------------------------------------------------------------------------------
    # stages

    def _make_pairs(self, iteration: int, train: Sequence[PromptRecord], model_path: str, verify, judge: Judge,
                    timings: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, int], int]:
        cfg, run_id = self.cfg, self.run_id
        t0 = time.perf_counter()
        policy = self._load_policy(model_path)
        samples = sample_candidates(
            policy, [p.prompt for p in train], n=cfg.sampling.candidates_per_prompt,
            temperatures=cfg.sampling.temperatures, seed=cfg.seed, iteration=iteration,
            batch_size=cfg.sampling.batch_size, max_new_tokens=cfg.policy.max_new_tokens, top_p=cfg.sampling.top_p,
            on_batch=lambda d, t: self._emit("sample", d, t, iteration), should_stop=self.cancel.is_set)
        timings["sample"] = time.perf_counter() - t0
        prefix = policy.completion_prefix
        rendered = [policy.render(p.prompt) for p in train]
        self._rendering = (policy.prompt_template, prefix)
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
            judge, tasks, self.rubric, cfg.judge.ranking, confirm=False, chunk=cfg.judge.batch_size,
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
            d: PairDecision = decide_pair(texts, ranking.matches, cfg.pairs, self.rubric, checks[k],
                                          ranked=None if cfg.judge.ranking == "round_robin" else
                                          ((ranking.chosen, ranking.rejected) if ranking.decisive else (None, None)))
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

    def _blend(self, iteration: int, n_rlaif: int) -> list[dict[str, Any]]:
        """Labelled anchor pairs mixed into this iteration's DPO data (training.human_blend), stored as pairs."""
        fraction = self.cfg.training.human_blend
        if fraction <= 0 or not self.anchor_set_id or n_rlaif == 0:
            return []
        template, prefix = self._rendering  # exactly as the RLAIF pairs of this iteration were rendered

        def render(prompt: str) -> str:
            text = template.format(prompt=prompt)
            return text.rstrip() if prefix else text

        rows = blend_rows(self.store, self.anchor_set_id, self.cfg.calibration.annotators, fraction=fraction,
                          n_rlaif=n_rlaif, seed=self.cfg.seed + iteration, render=render, prefix=prefix)
        stored = [{"pair_id": _short(self.run_id, iteration, r["anchor_item_id"], "anchor"), "run_id": self.run_id,
                   "iteration": iteration, "prompt_id": r["anchor_item_id"], "prompt": r["prompt"],
                   "chosen": r["chosen"], "rejected": r["rejected"], "kept": True, "drop_reason": None,
                   "source": r["source"], "rubric_version": self.rubric.version, "judge_id": None,
                   "confidence": 1.0} for r in rows]
        if stored:
            self.store.pairs.add_many(stored)
        return stored

    def _load_policy(self, model_path: str):
        cfg = self.cfg
        gguf = cfg.policy.gguf_file if model_path == str(cfg.policy_path()) else None
        return load_policy(model_path, device=cfg.policy.device, prompt_template=cfg.policy.prompt_template,
                           gguf_file=gguf)

    def _train(self, iteration: int, model_path: str, rows: list[dict[str, Any]], out_root: Path):
        from rlaif.training import train_dpo

        return train_dpo(model_path, rows, self.cfg.training, out_root / f"iteration-{iteration:02d}",
                         seed=self.cfg.seed + iteration, device=self.cfg.policy.device,
                         on_step=lambda s, t: self._emit("train", s, t, iteration), cancel=self.cancel)

    def _anchor_items(self) -> list[dict[str, Any]]:
        if not self.anchor_set_id or not self.cfg.monitoring.anchor_win_rate:
            return []
        from rlaif.anchors.labelling import resolved_labels

        labels = resolved_labels(self.store, self.anchor_set_id, annotators=self.cfg.calibration.annotators,
                                 split="all")
        items = []
        for item in self.store.anchors.items(self.anchor_set_id, split="all"):
            label = labels.get(item["item_id"])
            if label is not None and label.label in ("A", "B"):
                preferred = item["response_a"] if label.label == "A" else item["response_b"]
                items.append({**item, "preferred": preferred})
        return items[: self.cfg.monitoring.anchor_max_items]

    def _evaluate(self, iteration: int, model_path: str, eval: Sequence[PromptRecord], verify):
        cfg = self.cfg
        policy = self._load_policy(model_path)
        outputs = greedy(policy, [p.prompt for p in eval], batch_size=cfg.eval.batch_size,
                         max_new_tokens=cfg.policy.max_new_tokens,
                         on_batch=lambda d, t: self._emit("eval", d, t, iteration))
        anchors = self._anchor_items()
        anchor_outputs = []
        if anchors:
            texts = greedy(policy, [a["prompt"] for a in anchors], batch_size=cfg.eval.batch_size,
                           max_new_tokens=cfg.policy.max_new_tokens)
            anchor_outputs = [(a, text) for a, (text, _) in zip(anchors, texts)]
        return evaluate_outputs(outputs, eval, verify=verify, rubric=self.rubric), anchor_outputs

    def _monitor(self, iteration: int, state: LoopState, eval: Sequence[PromptRecord], judge: Judge,
                 anchor_outputs) -> dict[str, Any]:
        """Anchor win rate, and the eval judge's win rates vs the previous iteration and the base (with the
        training judge's disagreement on the same comparisons)."""
        out: dict[str, Any] = {"metrics": {}}
        scorer = self.eval_judge or judge
        if anchor_outputs:
            comps = [Comparison(a["prompt"], text, a["preferred"], a.get("reference"), a["item_id"])
                     for a, text in anchor_outputs]
            wr = win_rate([v.winner for v in scorer.compare(comps, self.rubric)], seed=self.cfg.seed)
            out["anchor_win_rate"] = {**wr, "judge": scorer.judge_id}
            if wr["win_rate"] is not None:
                out["metrics"]["anchor_win_rate"] = wr["win_rate"]
        if self.eval_judge is not None and iteration == 0:
            out["metrics"]["eval_win_rate_vs_base"] = 0.5  # the base against itself: the judge-based baseline
        if self.eval_judge is None or iteration == 0:
            return out
        prompts = list(eval)[: self.cfg.eval_judge.max_prompts] if self.cfg.eval_judge.max_prompts else list(eval)
        current = state.outputs[iteration]
        for label, other in (("previous", iteration - 1), ("base", 0)):
            if label == "base" and iteration == 1:
                out["eval_vs_base"] = out["eval_vs_previous"]
                out["metrics"]["eval_win_rate_vs_base"] = out["metrics"].get("eval_win_rate_vs_previous")
                continue
            before = state.outputs.get(other) or self._stored_outputs(self.run_id, other)
            comps = [Comparison(p.prompt, current[p.id], before[p.id], p.reference, p.id)
                     for p in prompts if p.id in current and p.id in before]
            verdicts = [v.winner for v in self.eval_judge.compare(comps, self.rubric)]
            wr = win_rate(verdicts, seed=self.cfg.seed)
            out[f"eval_vs_{label}"] = {**wr, "judge": self.eval_judge.judge_id}
            if wr["win_rate"] is not None:
                out["metrics"][f"eval_win_rate_vs_{label}"] = wr["win_rate"]
            if label == "previous":
                training = [v.winner for v in judge.compare(comps, self.rubric)]
                rate = disagreement_rate(verdicts, training)
                out["judge_disagreement_rate"] = rate
                if rate is not None:
                    out["metrics"]["judge_disagreement_rate"] = rate
        out["metrics"] = {k: v for k, v in out["metrics"].items() if v is not None}
        return out


def _count_sources(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("source") or "rlaif"] = counts.get(r.get("source") or "rlaif", 0) + 1
    return counts


def _deltas(metrics: dict[str, dict[str, float]], earlier: dict[int, dict[str, dict[str, float]]],
            iteration: int) -> dict[str, Any]:
    """Per cohort and metric: change against the previous iteration and against the base (iteration 0)."""
    out: dict[str, Any] = {}
    for label, k in (("vs_previous", iteration - 1), ("vs_base", 0)):
        if iteration == 0 or k not in earlier:
            continue
        out[label] = {c: {m: v - earlier[k][c][m] for m, v in ms.items() if m in earlier[k].get(c, {})}
                      for c, ms in metrics.items()}
    return out
