"""Background jobs for the workbench: a worker thread runs the loop while pages poll the store for progress.

Why one worker thread per process: a DPO run holds the GPU (or every CPU core) for minutes, and two at once would
each run at half speed and may not fit in memory. So jobs queue in FIFO order and ONE worker runs them; the queue
and the cancel events live at module level (not in a Streamlit session), so a job outlives the page that started
it and a reload finds it again through the store's ``jobs`` table. The worker never calls ``st.*``: it writes
stage/step/ETA to the job row and a page reads it with ``@st.fragment(run_every=...)``.

Cancelling goes through the store (``store.jobs.request_cancel``); a watcher polls that flag and sets the
``threading.Event`` the pipeline checks between steps. A job left ``running`` by a server that died is marked
``interrupted`` when the next server opens the store (see ``rlaif.workbench.stores.open_store``).

    job_id = RUNNER.submit_run(store, run_config("sample_data/harbor_sql/loop.yaml"), started_by="ana")
    RUNNER.cancel(store, job_id)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rlaif.config import RunConfig
from rlaif.datasets import load_prompts
from rlaif.judges import Judge
from rlaif.loop import ProgressEvent, RLAIFPipeline, RunCancelled
from rlaif.rubric import Rubric, rubric_from_dict
from rlaif.workbench.fmt import fmt_seconds

RUN_JOB = "run_loop"
_WRITE_EVERY_S = 0.25  # progress rows written at most this often (stage changes always)
_POLL_EVERY_S = 0.5  # how often the watcher reads the cancel flag and stamps a heartbeat


@dataclass
class _Job:
    job_id: str
    store: Any
    config: RunConfig
    rubric: Rubric | None
    judge: Judge | None
    resume_run_id: str | None = None  # set: continue this stored run instead of starting a new one
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


# ---------------------------------------------------------------------------------------------------------------------
# progress over the whole run: the job row's step/total count work units of the run, not of the current stage

#: Rough share of an iteration's time per stage (the pipeline's order). Why weights: a stage-by-stage bar goes
#: 0→100→25→100 and its ETA says "0:00" halfway; a run-wide fraction needs each stage's share, and training and
#: sampling dominate. The baseline (iteration 0) only calibrates, evaluates and gates.
STAGE_WEIGHTS = {"sample": 3.0, "verify": 1.0, "judge": 3.0, "pairs": 0.2, "train": 4.0, "eval": 2.0, "gate": 0.1}
BASELINE_WEIGHTS = {"calibrate": 0.5, "eval": 2.0, "gate": 0.1}
PROGRESS_UNITS = 10_000  # the job row's ``total``: step/total is the run-wide fraction


def run_fraction(iteration: int, stage: str, step: int, total: int, iterations: int) -> float:
    """How much of a run of ``iterations`` (plus the baseline) is done at (iteration, stage, step/total), in [0, 1]."""
    def weight(stages: dict[str, float]) -> float:
        return sum(stages.values())

    whole = weight(BASELINE_WEIGHTS) + iterations * weight(STAGE_WEIGHTS)
    stages = BASELINE_WEIGHTS if iteration == 0 else STAGE_WEIGHTS
    done = 0.0 if iteration == 0 else weight(BASELINE_WEIGHTS) + (iteration - 1) * weight(STAGE_WEIGHTS)
    if stage in ("done",):
        return 1.0
    if stage in stages:
        order = list(stages)
        done += sum(stages[s] for s in order[:order.index(stage)])
        done += stages[stage] * (min(step, total) / total if total else 0.0)
    return max(0.0, min(1.0, done / whole))


class _ProgressWriter:
    """The pipeline's progress callback: stage, the run-wide fraction (as step/PROGRESS_UNITS) and an ETA for the whole
    run from the time this job has taken for the share it has done, written to the job row."""

    def __init__(self, job: _Job, pipeline: RLAIFPipeline):
        self.job, self.pipeline = job, pipeline
        self.iterations = job.config.loop.iterations
        self.stage_key: tuple[int, str] | None = None
        self.started = time.monotonic()
        self.start_fraction: float | None = None  # a resumed run starts part-way: its ETA counts from there
        self.last_write = 0.0
        self.run_id_written = False

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        key = (event.iteration, event.stage)
        changed = key != self.stage_key
        if changed:
            self.stage_key = key
        if not changed and event.step < event.total and now - self.last_write < _WRITE_EVERY_S:
            return
        self.last_write = now
        fraction = run_fraction(event.iteration, event.stage, event.step, event.total, self.iterations)
        if self.start_fraction is None:  # where this job began: the start of the first stage it reports
            self.start_fraction = run_fraction(event.iteration, event.stage, 0, event.total, self.iterations)
        eta = None
        gained = fraction - self.start_fraction
        if gained > 0 and fraction < 1.0:
            eta = (now - self.started) / gained * (1.0 - fraction)
        message = f"iteration {event.iteration}/{self.iterations} · {event.stage} {event.step}/{event.total}"
        message += f" · {fraction:.0%} of the run"
        if eta is not None:
            message += f" · ETA {fmt_seconds(eta)}"
        if event.message:
            message += f" · {event.message}"
        fields: dict[str, Any] = dict(stage=event.stage, step=int(round(fraction * PROGRESS_UNITS)),
                                      total=PROGRESS_UNITS, message=message)
        if not self.run_id_written and self.pipeline.run_id:
            fields["run_id"] = self.pipeline.run_id
            self.run_id_written = True
        self.job.store.jobs.update(self.job.job_id, **fields)


class JobRunner:
    """A FIFO of run jobs and the one worker thread that runs them, one at a time."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}
        self._active: _Job | None = None
        self._thread: threading.Thread | None = None

    # ---- what pages call

    def submit_run(self, store, config: RunConfig, *, started_by: str, rubric: Rubric | None = None,
                   rubric_version: str | None = None, judge: Judge | None = None, project: str | None = None) -> str:
        """Queue a loop run and return its job id. ``rubric_version`` loads that stored rubric for the run."""
        if rubric is None and rubric_version:
            row = store.rubrics.get(rubric_version)
            if row is None:
                raise LookupError(f"no rubric version {rubric_version!r} in the store")
            rubric = rubric_from_dict(row["body"], source=f"rubric {rubric_version[:12]}")
        params = {"project": project, "config": config.to_dict(), "base_dir": config.base_dir,
                  "rubric_version": rubric.version if rubric else None, "started_by": started_by}
        job_id = store.jobs.create(RUN_JOB, params)
        self._enqueue(store, _Job(job_id, store, config, rubric, judge))
        return job_id

    def _enqueue(self, store, job: _Job) -> None:
        job_id = job.job_id
        with self._lock:
            self._jobs[job_id] = job
            self._queue.append(job)
            position = len(self._queue) + (1 if self._active else 0)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="rlaif-job-worker", daemon=True)
                self._thread.start()
            self._lock.notify_all()
        if position > 1:
            store.jobs.update(job_id, message=f"queued: {position - 1} job(s) ahead hold the trainer")

    def submit_resume(self, store, run_id: str, *, started_by: str) -> str:
        """Queue the continuation of a crashed, interrupted or cancelled run (the same work as `rlaif resume`)."""
        run = store.runs.get(run_id)
        if run is None:
            raise LookupError(f"no run {run_id!r} in the store")
        if not resumable(run):
            raise ValueError(f"run {run_id} is {run['status']}; nothing to resume")
        config = RunConfig.from_record(run["config"])
        job_id = store.jobs.create(RUN_JOB, {"resume": run_id, "started_by": started_by}, run_id=run_id)
        job = _Job(job_id, store, config, None, None, resume_run_id=run_id)
        self._enqueue(store, job)
        return job_id

    def cancel(self, store, job_id: str) -> None:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
        store.jobs.request_cancel(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.cancel.set()
            if job in self._queue:
                self._queue.remove(job)
                self._jobs.pop(job_id, None)
                store.jobs.update(job_id, status="cancelled", message="cancelled before it started")
                job.done.set()

    def position(self, job_id: str) -> int | None:
        """0 while running, k when k jobs are ahead in the queue, None when this process does not hold it."""
        with self._lock:
            if self._active is not None and self._active.job_id == job_id:
                return 0
            for k, job in enumerate(self._queue):
                if job.job_id == job_id:
                    return k + (1 if self._active else 0)
        return None

    def active_job_id(self) -> str | None:
        with self._lock:
            return self._active.job_id if self._active else None

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Block until the job ended (tests, CLI); True when it did (or this process never ran it)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return True if job is None else job.done.wait(timeout)

    def pending(self) -> list[str]:
        """Ids of the jobs queued or running in this process."""
        with self._lock:
            return list(self._jobs)

    # ---- the worker

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    if not self._lock.wait(timeout=30):
                        self._thread = None  # idle: let the thread end; submit starts a new one
                        return
                job = self._queue.popleft()
                self._active = job
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._active = None
                    self._jobs.pop(job.job_id, None)  # the store row is the record from now on
                job.done.set()
                del job  # an idle worker must not keep the last job's store alive

    def _run(self, job: _Job) -> None:
        store, cfg = job.store, job.config
        stop_watch = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(job, stop_watch), daemon=True)
        try:
            store.jobs.update(job.job_id, status="running", stage="start", step=0, total=0, message="starting")
            watcher.start()
            if job.resume_run_id:
                pipeline = RLAIFPipeline.for_run(store, job.resume_run_id, cancel=job.cancel)
                pipeline.progress = _ProgressWriter(job, pipeline)
                iterations = pipeline.resume()
            else:
                pipeline = RLAIFPipeline(cfg, store=store, judge=job.judge, rubric=job.rubric, cancel=job.cancel)
                pipeline.progress = _ProgressWriter(job, pipeline)
                train, evals = load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))
                iterations = pipeline.run(train, evals)
            last = None
            for last in iterations:
                pass
            run = store.runs.get(pipeline.run_id)
            summary = f"run {run['status']}"
            if last is not None:
                summary += f" after iteration {last.iteration}; gate {last.gate.decision}"
            if run.get("recommended_iteration") is not None:
                summary += f"; recommended iteration {run['recommended_iteration']}"
            store.jobs.update(job.job_id, status="completed", run_id=pipeline.run_id, stage="done", message=summary,
                              step=PROGRESS_UNITS, total=PROGRESS_UNITS)
        except RunCancelled:
            store.jobs.update(job.job_id, status="cancelled", stage="cancelled", message="cancelled")
        except BaseException as err:  # the page shows the failure; the worker lives on for the next job
            store.jobs.update(job.job_id, status="failed", stage="failed", error=f"{type(err).__name__}: {err}",
                              message="failed")
        finally:
            stop_watch.set()

    @staticmethod
    def _watch(job: _Job, stop: threading.Event) -> None:
        """Mirror the store's cancel flag into the pipeline's event; stamp a heartbeat while alive."""
        while not stop.wait(_POLL_EVERY_S):
            try:
                if job.store.jobs.cancel_requested(job.job_id):
                    job.cancel.set()
                job.store.jobs.heartbeat(job.job_id)
            except Exception:  # a closed store during shutdown: nothing left to watch
                return


def resumable(run: dict[str, Any]) -> bool:
    """A run can be continued unless it finished (completed, or stopped by a gate); a 'running' run whose process is
    gone (a crash) can be, but not one this process is running right now."""
    if run["status"] in ("completed", "stopped"):
        return False
    active = RUNNER.active_job_id()
    return not (run["status"] == "running" and active is not None)


RUNNER = JobRunner()
"""The process-wide runner every page and session shares."""


@dataclass(frozen=True)
class JobView:
    """A job row as the Runs page shows it: ``fraction`` is of the whole run (all iterations), ``label`` the stage,
    the run-wide share and the ETA; ``error`` the full reason of a failure."""

    job_id: str
    status: str
    stage: str | None
    fraction: float | None
    label: str
    run_id: str | None
    error: str | None
    started_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


def job_view(row: dict[str, Any]) -> JobView:
    step, total = row.get("step"), row.get("total")
    fraction = min(1.0, step / total) if step is not None and total else None
    label = row.get("message") or row.get("status")
    if row["status"] == "interrupted":
        label = f"interrupted: {row.get('error') or 'the server stopped while it ran'}"
    params = row.get("params") if isinstance(row.get("params"), dict) else {}
    return JobView(row["job_id"], row["status"], row.get("stage"), fraction, label, row.get("run_id"),
                   row.get("error"), params.get("started_by"))


def active_jobs(rows: list[dict[str, Any]]) -> list[JobView]:
    """Queued and running jobs as the page lists them: the running job first, then the queue in the order it runs
    (oldest first); ``store.jobs.list`` is newest first, which put the waiting job above the running one."""
    active = [r for r in rows if r["status"] in ("queued", "running")]
    active.sort(key=lambda r: (r["status"] != "running", str(r.get("created_at") or ""), r["job_id"]))
    return [job_view(r) for r in active]
