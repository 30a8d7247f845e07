"""The background job runner: one training job at a time (others queue), cancel, and jobs interrupted by a restart.

A fake pipeline (a real class with the pipeline's interface, scripted by events) stands in for training, so the
tests control exactly when a job is "training" and can check that no two ever overlap.
"""

from __future__ import annotations

import threading
import time

import pytest

import store.jobs as jobs_module
from rlaif.pipeline import ProgressEvent, RunCancelled
from rlaif.workbench.jobs import RUNNER, job_view
from rlaif.workbench.projects import run_config
from rlaif.workbench.stores import close_stores, open_store
from tests.processes import dead_process_owner
from tests.workbench_fixtures import SAMPLE


class FakePipeline:
    """Runs "iterations" that wait for the test to release them; records how many run at once."""

    lock = threading.Lock()
    running = 0
    max_running = 0
    release: dict[str, threading.Event] = {}
    started: list[str] = []

    def __init__(self, cfg, *, store, judge=None, rubric=None, progress=None, cancel=None):
        self.cfg, self.store, self.cancel = cfg, store, cancel
        self.progress = progress or (lambda event: None)
        self.run_id = None

    def run(self, train, evals):
        cls = FakePipeline
        self.run_id = f"run-fake-{len(cls.started)}"
        self.store.runs.create(self.run_id, "fake", {}, "h", "stub", None, None, None)
        with cls.lock:
            cls.running += 1
            cls.max_running = max(cls.max_running, cls.running)
            cls.started.append(self.run_id)
            gate = cls.release.setdefault(self.run_id, threading.Event())
        try:
            step = 0
            while not gate.wait(0.02):
                if self.cancel.is_set():
                    self.store.runs.set_status(self.run_id, "cancelled")
                    raise RunCancelled("cancelled")
                step += 1
                self.progress(ProgressEvent("train", min(step, 99), 100, 1))
            self.store.runs.set_status(self.run_id, "completed")
            yield from ()
        finally:
            with cls.lock:
                cls.running -= 1


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setattr("rlaif.workbench.jobs.RLAIFPipeline", FakePipeline)
    FakePipeline.running = FakePipeline.max_running = 0
    FakePipeline.release, FakePipeline.started = {}, []
    s = open_store(tmp_path / "jobs.duckdb")
    yield s
    for event in FakePipeline.release.values():
        event.set()
    for job_id in RUNNER.pending():
        RUNNER.cancel(s, job_id)
        RUNNER.wait(job_id, 30)
    close_stores()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def submit(store):
    return RUNNER.submit_run(store, run_config(SAMPLE / "loop.yaml"), started_by="test")


def test_one_training_job_at_a_time_and_the_rest_queue(fake):
    jobs = [submit(fake) for _ in range(3)]
    wait_for(lambda: len(FakePipeline.started) == 1)
    assert [RUNNER.position(j) for j in jobs] == [0, 1, 2]
    assert [fake.jobs.get(j)["status"] for j in jobs] == ["running", "queued", "queued"]
    assert "queued" in fake.jobs.get(jobs[2])["message"]
    wait_for(lambda: (fake.jobs.get(jobs[0])["step"] or 0) > 0)  # progress reaches the job row
    view = job_view(fake.jobs.get(jobs[0]))
    assert view.stage == "train" and 0 < view.fraction < 1 and "ETA" in view.label
    for k in range(3):
        FakePipeline.release.setdefault(f"run-fake-{k}", threading.Event()).set()
        assert RUNNER.wait(jobs[k], 10)
    assert FakePipeline.max_running == 1
    assert [fake.jobs.get(j)["status"] for j in jobs] == ["completed"] * 3
    assert [fake.jobs.get(j)["run_id"] for j in jobs] == FakePipeline.started


def test_cancel_a_running_job_through_the_store_and_a_queued_one_at_once(fake):
    running, queued = submit(fake), submit(fake)
    wait_for(lambda: len(FakePipeline.started) == 1)
    RUNNER.cancel(fake, queued)
    assert fake.jobs.get(queued)["status"] == "cancelled" and RUNNER.position(queued) is None
    fake.jobs.request_cancel(running)  # only the store flag: the watcher must carry it to the pipeline
    assert RUNNER.wait(running, 10)
    assert fake.jobs.get(running)["status"] == "cancelled"
    assert fake.runs.get(FakePipeline.started[0])["status"] == "cancelled"
    assert len(FakePipeline.started) == 1  # the queued job never started


def test_a_failing_job_is_recorded_and_the_worker_goes_on(fake, monkeypatch):
    class Broken(FakePipeline):
        def run(self, train, evals):
            raise RuntimeError("boom with key sk-abcdefghijklmnopqrstuv")
            yield

    monkeypatch.setattr("rlaif.workbench.jobs.RLAIFPipeline", Broken)
    failed = submit(fake)
    assert RUNNER.wait(failed, 10)
    row = fake.jobs.get(failed)
    assert row["status"] == "failed" and "boom" in row["error"] and "sk-abc" not in row["error"]
    monkeypatch.setattr("rlaif.workbench.jobs.RLAIFPipeline", FakePipeline)
    ok = submit(fake)
    wait_for(lambda: FakePipeline.started)
    FakePipeline.release.setdefault(FakePipeline.started[0], threading.Event()).set()
    assert RUNNER.wait(ok, 10) and fake.jobs.get(ok)["status"] == "completed"


def test_jobs_of_a_previous_server_show_as_interrupted_after_restart(tmp_path, monkeypatch):
    path = tmp_path / "restart.duckdb"
    monkeypatch.setattr(jobs_module, "PROCESS_TOKEN", dead_process_owner())  # a server that has since died
    before = open_store(path)
    before.runs.create("run-old", "old", {}, "h", "stub", None, None, None)
    job_id = before.jobs.create("run_loop", {"project": "sample"}, run_id="run-old")
    before.jobs.update(job_id, status="running", stage="train", step=3, total=10)
    close_stores()  # the server stops...

    monkeypatch.undo()  # ...and a new one (this process) starts
    after = open_store(path)
    row = after.jobs.get(job_id)
    assert row["status"] == "interrupted" and after.runs.get("run-old")["status"] == "interrupted"
    view = job_view(row)
    assert not view.active and view.label.startswith("interrupted")
    close_stores()


def test_an_interrupted_run_resumes_as_a_background_job(tmp_path):
    """A run cut off mid-iteration (its process gone: status interrupted) is continued by a resume job with the real
    pipeline, and ends as an uninterrupted run would: every iteration has its manifest."""
    from rlaif.datasets import load_prompts
    from rlaif.pipeline import RLAIFPipeline
    from rlaif.workbench.jobs import resumable
    from store import Store
    from tests.tiny_models import build_tiny_gpt2
    from tests.workbench_fixtures import write_project

    project = write_project(tmp_path / "p", build_tiny_gpt2(tmp_path / "m"), iterations=2)
    cfg = run_config(project)
    cancel = threading.Event()

    def stop_in_iteration_2(event):
        if event.iteration == 2 and event.stage == "judge":
            cancel.set()

    with Store(tmp_path / "s.duckdb") as store:
        pipe = RLAIFPipeline(cfg, store=store, progress=stop_in_iteration_2, cancel=cancel)
        with pytest.raises(RunCancelled):
            list(pipe.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
        store.runs.set_status(pipe.run_id, "interrupted")  # what the next server start records for a dead job
        assert resumable(store.runs.get(pipe.run_id))
        assert [m["iteration"] for m in store.manifests.for_run(pipe.run_id)] == [0, 1]

        job_id = RUNNER.submit_resume(store, pipe.run_id, started_by="ana")
        assert RUNNER.wait(job_id, timeout=300)
        job = store.jobs.get(job_id)
        assert job["status"] == "completed", job["error"]
        assert job["run_id"] == pipe.run_id
        assert store.runs.get(pipe.run_id)["status"] == "completed"
        assert [m["iteration"] for m in store.manifests.for_run(pipe.run_id)] == [0, 1, 2]
        assert not resumable(store.runs.get(pipe.run_id))
        with pytest.raises(ValueError, match="nothing to resume"):
            RUNNER.submit_resume(store, pipe.run_id, started_by="ana")
