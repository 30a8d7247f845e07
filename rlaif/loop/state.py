"""Where a run stands between iterations, and how that is read back from its manifests (resume, replay).

Why from manifests: a manifest is written last, so the manifests of a run list exactly the iterations that finished;
the model to continue from, the gate's history and the metrics for deltas all come from them, and the checkpoint
must still hash as its manifest recorded.

    state = resume_state(store, run_id, cfg.loop.iterations, base_path, base_hash)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlaif.policy import model_hash


class NothingToResume(Exception):
    """The run already finished (completed, stopped by a gate) or does not exist."""


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

    def remember(self, body: dict[str, Any], *, parent: bool = True) -> None:
        """Take in a finished iteration's manifest: its gate value, metrics and (as a parent) its id."""
        self.history.append((body["iteration"], body["gate"]["value"]))
        self.metrics[body["iteration"]] = body["metrics"]
        if parent:
            self.parents.append(body["manifest_id"])


def stored_outputs(store, run_id: str, iteration: int) -> dict[str, str]:
    """An iteration's held-out outputs by prompt id, as stored."""
    return {pid: row["output"] for pid, row in store.eval_outputs.for_iteration(run_id, iteration).items()}


def finished_iterations(store, run_id: str) -> list[dict[str, Any]]:
    """The manifest bodies of a run's finished iterations, in order."""
    return sorted((m["body"] for m in store.manifests.for_run(run_id)), key=lambda b: b["iteration"])


def resume_state(store, run_id: str, iterations: int, base_path: str, base_hash: str) -> LoopState:
    """The state after the run's last finished iteration; what an unfinished one left behind is purged."""
    bodies = finished_iterations(store, run_id)
    if not bodies:
        state = LoopState(0, base_path, base_hash)
    else:
        last = bodies[-1]
        if last["gate"]["regressed"] or last["iteration"] >= iterations:
            raise NothingToResume(f"run {run_id} already finished at iteration {last['iteration']}")
        state = LoopState(last["iteration"] + 1, last["model_path"], last["model_hash"])
        for body in bodies:
            state.remember(body)
        for k in {0, last["iteration"]}:
            state.outputs[k] = stored_outputs(store, run_id, k)
        if model_hash(state.model_path) != state.model_hash:
            raise ValueError(f"checkpoint {state.model_path} no longer matches its manifest's model hash (changed "
                             "since the run wrote it): resuming would train on an unknown model; start a new run")
    store.purge_iteration(run_id, state.start)
    return state


def replay_state(store, manifest: dict[str, Any], parent_model_path: str) -> LoopState:
    """The state the manifest's iteration started from: its parent model, and the iterations before it (for the
    gate's history and the deltas; they are not parents of the replay, which is a new run)."""
    iteration = manifest["iteration"]
    state = LoopState(iteration, parent_model_path, model_hash(parent_model_path))
    for body in finished_iterations(store, manifest["run_id"]):
        if body["iteration"] < iteration:
            state.remember(body, parent=False)
            state.outputs[body["iteration"]] = stored_outputs(store, manifest["run_id"], body["iteration"])
    return state
