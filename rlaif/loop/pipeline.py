"""The RLAIF loop: sample → verify → judge → build pairs → calibration gate → train (DPO+LoRA) → evaluate →
regression gate → manifest, iteration after iteration.

The pipeline is the one Python API behind the CLI and the workbench pages. It records everything in the store as it
goes (candidates, judgements, pairs kept and dropped, evals, held-out outputs) and writes each iteration's manifest
last, so a manifest's existence means its iteration finished. That is also what makes a crash cheap: ``resume``
continues after the last manifest, redoing only the unfinished iteration, whose judge verdicts come back from the
judge cache. Progress goes to a callback (the CLI draws bars, the workbench writes job rows); it never prints.
The stages are functions in ``stages``; their outputs become rows in ``records``; the parts come from ``project``.

    pipeline = RLAIFPipeline(cfg, store=Store("rlaif.duckdb"))
    for it in pipeline.run(load_prompts(train), load_prompts(eval)):
        print(it.iteration, it.eval_result.metric("execution_accuracy"), it.regressed)
    RLAIFPipeline.for_run(store, run_id).resume()           # after a crash
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rlaif.anchors.gate import run_calibration_gate
from rlaif.anchors.importers import resolve_anchor_set
from rlaif.config import RunConfig
from rlaif.core.scratch import sweep_dead_scratch
from rlaif.datasets import PromptRecord, records_from_store
from rlaif.evaluation import EvalResult
from rlaif.gates import GateDecision, recommend_best, regression_gate
from rlaif.judges import Judge
from rlaif.loop import records, stages
from rlaif.loop.project import Parts, Project
from rlaif.loop.stages import RunCancelled
from rlaif.loop.state import LoopState, NothingToResume, replay_state, resume_state, stored_outputs
from rlaif.manifest import build_manifest, write_manifest_file
from rlaif.model_source import describe_source
from rlaif.policy import configure_cpu_threads, model_hash, quiet_library_progress
from rlaif.rubric import Rubric

FAULT_ENV = "RLAIF_FAULT_AT"
log = logging.getLogger(__name__)


class BudgetExhausted(Exception):
    """The judge's per-run budget ran out; the run stops cleanly (recorded as stopped, nothing trained on a partial
    set of verdicts)."""


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
    redacted: int = 0  # key-shaped strings replaced by [redacted] in this iteration's stored model output
    throughput: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> new tokens, seconds, tokens/s

    @property
    def regressed(self) -> bool:
        return self.gate.regressed


@dataclass
class _Pairs:
    """What the pair-making stages of one iteration produced."""

    rows: list[dict[str, Any]]  # kept rows, RLAIF first, then blended anchor pairs
    dropped: dict[str, int]
    calls: int
    blended: int
    redacted: int = 0  # key-shaped strings redacted from candidates, verdicts and pairs
    judge_bias: dict[str, Any] | None = None  # the training judge's bias figures on this iteration's matches

    @property
    def rlaif(self) -> int:
        return len(self.rows) - self.blended


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
        # a copy: checkpoints go under an absolute output_dir, the caller's config stays as it was
        self.cfg = dataclasses.replace(config, output_dir=str(Path(config.output_dir).resolve()))
        self.project = Project.from_config(self.cfg, rubric)
        self.rubric = self.project.rubric
        self.store = store
        self.progress = progress or (lambda event: None)
        self.cancel = cancel or threading.Event()
        self._given = (judge, eval_judge)
        self.parts = Parts(None, None, None)
        self.calibration = None
        self.anchor_set_id: str | None = None
        self.run_id: str | None = None
        self.context: dict[str, Any] = {}

    @property
    def judge(self) -> Judge | None:
        return self.parts.judge

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
        yield from self._session(train, eval, lambda base_path, base_hash: LoopState(0, base_path, base_hash))

    def resume(self) -> Iterator[IterationResult]:
        """Continue a crashed, failed or cancelled run after its last finished iteration."""
        run = self.store.runs.get(self.run_id)
        if run is None:
            raise NothingToResume(f"no run {self.run_id!r} in the store")
        if run["status"] in ("completed", "stopped"):
            raise NothingToResume(f"run {self.run_id} is {run['status']}; nothing to resume")
        train = records_from_store(self.store.datasets.prompts(run["train_dataset_id"]))
        eval = records_from_store(self.store.datasets.prompts(run["eval_dataset_id"]))
        yield from self._session(train, eval, lambda base_path, base_hash: resume_state(
            self.store, self.run_id, self.cfg.loop.iterations, base_path, base_hash))

    def replay(self, manifest: dict[str, Any], parent_model_path: str) -> IterationResult:
        """Re-run the single iteration a manifest describes, from its parent model, as a new run (for reproduce)."""
        if self.store.runs.get(manifest["run_id"]) is None:
            raise NothingToResume(f"the manifest's run {manifest['run_id']} is not in this store")
        train = records_from_store(self.store.datasets.prompts(manifest["train_dataset_id"]))
        eval = records_from_store(self.store.datasets.prompts(manifest["eval_dataset_id"]))
        self.run_id = None
        results = list(self._session(train, eval, lambda *_: replay_state(self.store, manifest, parent_model_path),
                                     only_one=True, name=f"reproduce {manifest['manifest_id']}"))
        if not results:
            raise RuntimeError("the replayed iteration produced no result (see the run's error)")
        return results[0]

    # -----------------------------------------------------------------------------------------------------------------
    # one session: set up, calibrate, iterate; the run's status records how it ended

    def _session(self, train, eval, state_for, *, only_one: bool = False, name: str | None = None):
        cfg, store = self.cfg, self.store
        configure_cpu_threads()
        quiet_library_progress()
        swept = sweep_dead_scratch()  # verifier folders of runs killed before they could clean up
        if swept:
            log.info("removed %d scratch folder(s) left by processes that died", swept)
        judge, eval_judge = self._given
        with self.project.open(store, judge=judge, eval_judge=eval_judge, with_eval_judge=True,
                               cache_expensive=True) as parts:
            self.parts = parts
            rubric_version = store.rubrics.save(self.rubric.name, self.rubric.to_dict())
            assert rubric_version == self.rubric.version, "store and engine must hash rubrics the same way"
            train_id = store.datasets.import_prompts(f"{cfg.name}-train", [p.to_dict() for p in train], cfg.data.train)
            eval_id = store.datasets.import_prompts(f"{cfg.name}-eval", [p.to_dict() for p in eval], cfg.data.eval)
            self.project.check_policy()
            base_path = str(self.project.policy_path())
            base_hash = model_hash(base_path)
            # the anchor file is read before the run is recorded: a bad file must not leave a failed run behind
            self.anchor_set_id = self._resolve_anchor_set()
            if self.run_id is None:
                self.run_id = records.new_run_id(cfg, train_id, eval_id, rubric_version, parts.judge.judge_id,
                                                 base_hash)
                store.runs.create(self.run_id, name or cfg.name, cfg.to_record(), cfg.config_hash(),
                                  parts.judge.judge_id, rubric_version, train_id, eval_id)
            else:
                store.runs.set_status(self.run_id, "running")
            self.context = dict(config_hash=cfg.config_hash(), train_dataset_id=train_id, eval_dataset_id=eval_id,
                                rubric_version=rubric_version, judge=parts.judge.describe(),
                                eval_judge=parts.eval_judge.describe() if parts.eval_judge else None,
                                base_model_hash=base_hash,
                                policy_source=describe_source(base_path, revision=cfg.policy.revision,
                                                              gguf_file=cfg.policy.gguf_file).to_record())
            try:
                self._calibrate()
                state = state_for(base_path, base_hash)
                yield from self._iterations(train, eval, state, only_one)
            except RunCancelled:
                store.runs.set_status(self.run_id, "cancelled")
                raise
            except BudgetExhausted as err:
                store.runs.set_status(self.run_id, "stopped", error=str(err))
                return
            except BaseException as err:  # record the failure, then let it propagate
                store.runs.set_status(self.run_id, "failed", error=f"{type(err).__name__}: {err}")
                raise

    def _resolve_anchor_set(self) -> str | None:
        """The configured anchor set's id (a file is imported first), or None without one."""
        cal = self.cfg.calibration
        if not cal.anchor_set:
            return None
        try:
            return resolve_anchor_set(self.store, cal.anchor_set, self.cfg.resolve, cal.holdout_fraction)
        except RecursionError:  # json's parser on [[[[...]]]]: a user's file, not a bug of ours
            raise ValueError(f"calibration.anchor_set: {self.cfg.resolve(cal.anchor_set)}: invalid JSON: nested "
                             f"too deeply") from None

    def _calibrate(self) -> None:
        """The calibration gate runs before any training: a judge that disagrees with people trains nothing."""
        cal = self.cfg.calibration
        self._emit("calibrate", 0, 1, 0)
        self.calibration = run_calibration_gate(self.store, cal, self.parts.judge, self.rubric,
                                                resolve=self.cfg.resolve, seed=self.cfg.seed)
        self.context["calibration_gate"] = (self.calibration.to_dict() if self.calibration is not None
                                            else {"decision": "not_configured"})

    def _iterations(self, train, eval, state: LoopState, only_one: bool) -> Iterator[IterationResult]:
        last = state.start if only_one else self.cfg.loop.iterations
        for iteration in range(state.start, last + 1):
            self._check_cancel()
            result = self._iteration(iteration, state, train, eval)
            if result is None:
                return
            yield result
            if result.gate.regressed:
                self.store.runs.set_status(self.run_id, "stopped", error=None)
                return
        self.store.runs.set_status(self.run_id, "completed")

    # -----------------------------------------------------------------------------------------------------------------
    # one iteration, top to bottom

    def _iteration(self, iteration: int, state: LoopState, train, eval) -> IterationResult | None:
        cfg, store, run_id = self.cfg, self.store, self.run_id
        out_root = Path(cfg.output_dir) / run_id
        store.iterations.start(run_id, iteration)
        start_hash, timings, new_tokens = state.model_hash, {}, {}
        pairs, train_info = _Pairs([], {}, 0, 0), None
        if iteration > 0:
            if self.calibration is not None and not self.calibration.passed:
                return self._finish_early(iteration, state, "calibration_blocked",
                                          f"calibration gate: {self.calibration.reason}")
            pairs = self._make_pairs(iteration, train, state.model_path, timings, new_tokens)
            if not pairs.rlaif:
                self._note_redacted(iteration, pairs.redacted)
                return self._finish_early(iteration, state, "no_pairs", "no preference pairs survived the filters",
                                          dropped=sum(pairs.dropped.values()))
            self._check_cancel()
            t0 = time.perf_counter()
            train_info = stages.train(state.model_path, pairs.rows, cfg, out_root / f"iteration-{iteration:02d}",
                                      iteration, on_step=self._on("train", iteration), cancel=self.cancel)
            timings["train"] = time.perf_counter() - t0
            if train_info.cancelled:
                raise RunCancelled("run cancelled during training")
            state.model_path, state.model_hash = train_info.model_path, train_info.model_hash

        t0 = time.perf_counter()
        result, anchor_outputs = stages.evaluate(
            self.project.generator(state.model_path), eval, cfg, self.parts.verify, self.rubric,
            stages.anchor_items(store, self.anchor_set_id, cfg), on_batch=self._on("eval", iteration))
        timings["eval"] = time.perf_counter() - t0
        new_tokens["eval"] = sum(int(r["n_tokens"]) for r in result.rows)  # anchor outputs' time is in, not their tokens
        throughput = records.throughput(timings, new_tokens)
        state.outputs[iteration] = {r["prompt_id"]: r["output"] for r in result.rows}
        monitoring = stages.monitor(iteration, eval, lambda k: state.outputs.get(k) or stored_outputs(
            store, run_id, k), self.parts.judge, self.parts.eval_judge, self.rubric, cfg, anchor_outputs)
        result.metrics["all"].update(monitoring["metrics"])
        store.evals.add_many(result.to_store_rows(run_id, iteration))
        redacted = pairs.redacted + store.eval_outputs.add_many(records.eval_output_rows(run_id, iteration, result))
        self._note_redacted(iteration, redacted)

        value = result.metric(cfg.loop.primary_metric, cfg.loop.gate_cohort)
        gate = regression_gate(state.history, iteration, value, cfg.loop.regression_tolerance)
        state.history.append((iteration, value))
        self._emit("gate", 1, 1, iteration, gate.decision)
        metrics = result.summary()
        manifest = build_manifest(
            kind="baseline" if iteration == 0 else "iteration",
            run_id=run_id, iteration=iteration, parents=list(state.parents), **self.context,
            dataset_hash=records.pairs_hash(pairs.rows) if pairs.rows else None,
            pairs={"kept": len(pairs.rows), "dropped": pairs.dropped, "blended": pairs.blended,
                   "sources": records.source_counts(pairs.rows)},
            model_hash=state.model_hash, parent_model_hash=start_hash if iteration > 0 else None,
            model_path=state.model_path,
            metrics=metrics, deltas=_deltas(metrics, state.metrics, iteration),
            monitoring={k: v for k, v in monitoring.items() if k != "metrics"},
            primary_metric=cfg.loop.primary_metric, gate_cohort=cfg.loop.gate_cohort, gate=gate.to_dict(),
            judge_calls=pairs.calls, judge_stats=self.parts.judge.all_stats(), redacted_model_output=redacted,
            judge_bias=pairs.judge_bias,
            train_loss=train_info.train_loss if train_info else None,
            train_steps=train_info.steps if train_info else 0, throughput=throughput,
            seeds={"base": cfg.seed, "training": cfg.seed + iteration, "sampling": self.project.sampling_seed_rule()},
            generation=self.project.generation_record(),
            config=cfg.to_dict(), config_base_dir=str(Path(cfg.base_dir).resolve()),
        )
        state.metrics[iteration] = metrics
        store.iterations.finish(run_id, iteration, status="regressed" if gate.regressed else "completed",
                                model_path=state.model_path, model_hash=state.model_hash, regressed=gate.regressed,
                                gate_decision=gate.decision, pairs_kept=len(pairs.rows),
                                pairs_dropped=sum(pairs.dropped.values()))
        store.runs.set_recommended(run_id, recommend_best(state.history)[0])
        # written last: a manifest's existence means the iteration completed
        write_manifest_file(manifest, out_root / "manifests")
        store.manifests.write(manifest["manifest_id"], run_id, iteration, manifest)
        state.parents.append(manifest["manifest_id"])
        return IterationResult(iteration, len(pairs.rows), pairs.dropped, result, gate, manifest, state.model_path,
                               pairs.calls, train_info.train_loss if train_info else None, timings,
                               monitoring, pairs.blended, redacted, throughput)

    def _make_pairs(self, iteration: int, train: Sequence[PromptRecord], model_path: str,
                    timings: dict[str, float], new_tokens: dict[str, int]) -> _Pairs:
        """Sample, verify, rank and decide, storing candidates, judgements and pairs; then the human blend."""
        store, judge, rubric = self.store, self.parts.judge, self.rubric
        ids = records.IterationIds(self.run_id, iteration)
        t0 = time.perf_counter()
        candidates = stages.sample(self.project.generator(model_path), train, self.cfg, iteration,
                                   on_batch=self._on("sample", iteration), should_stop=self.cancel.is_set)
        self.project.release_generator()  # a managed server frees the accelerator for the judge and training
        timings["sample"] = time.perf_counter() - t0
        new_tokens["sample"] = sum(s.n_tokens for row in candidates.samples for s in row)

        t0 = time.perf_counter()
        verified = stages.verify(train, candidates, self.parts.verifier, judge,
                                 on_progress=self._on("verify", iteration), check_cancel=self._check_cancel)
        # model output that merely looks like a key is stored redacted and counted, never a reason to fail the run
        redacted = store.candidates.add_many(records.candidate_rows(ids, train, candidates, verified, rubric))
        timings["verify"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rankings = stages.rank(judge, train, candidates, rubric, self.cfg.judge,
                               on_round=lambda d, t: (self._check_cancel(), self._emit("judge", d, t, iteration)))
        redacted += store.judgements.add_many(records.judgement_rows(ids, train, candidates, rankings, judge, rubric))
        timings["judge"] = time.perf_counter() - t0
        if judge.budget_exhausted:
            raise BudgetExhausted("judge budget exhausted: stopping before training on a partial set of verdicts")

        decisions = stages.decide_pairs(train, candidates, rankings, verified, self.cfg.pairs, rubric)
        rows, n = records.redact_pair_rows(records.pair_rows(ids, train, candidates, decisions, rubric, judge.judge_id))
        redacted += n + store.pairs.add_many(rows)
        kept, dropped = [r for r in rows if r["kept"]], records.dropped_counts(decisions)
        self._emit("pairs", len(kept), len(train), iteration, f"{len(kept)} kept, {sum(dropped.values())} dropped")
        blended = records.blend_pair_rows(ids, stages.blend(store, self.anchor_set_id, self.cfg, iteration,
                                                            len(kept), candidates.rendering), rubric)
        if blended:
            blended, n = records.redact_pair_rows(blended)
            redacted += n + store.pairs.add_many(blended)
        return _Pairs(kept + blended, dropped, sum(r.calls for r in rankings), len(blended), redacted,
                      records.judge_bias(candidates, rankings))

    # -----------------------------------------------------------------------------------------------------------------
    # helpers

    def _finish_early(self, iteration: int, state: LoopState, status: str, reason: str, dropped: int = 0) -> None:
        self.store.iterations.finish(self.run_id, iteration, status=status, model_path=state.model_path,
                                     model_hash=state.model_hash, regressed=False, gate_decision=status,
                                     pairs_kept=0, pairs_dropped=dropped)
        self.store.runs.set_status(self.run_id, "stopped", error=reason)

    def _note_redacted(self, iteration: int, count: int) -> None:
        """Say (in the log; the CLI prints it from the result) that model output was stored redacted."""
        if count:
            log.warning("run %s iteration %d: %d key-shaped strings redacted from model output", self.run_id,
                        iteration, count)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled("run cancelled")

    def _emit(self, stage: str, step: int, total: int, iteration: int, message: str = "") -> None:
        self.progress(ProgressEvent(stage, step, total, iteration, message))
        _maybe_crash(stage, iteration, step)

    def _on(self, stage: str, iteration: int) -> Callable[[int, int], None]:
        return lambda done, total: self._emit(stage, done, total, iteration)


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
