"""Export: pick a run's kept pairs, review them pair by pair (untick to reject), approve the set (who, when and which
pairs were rejected are recorded; approving the same selection twice needs a confirmation), export it for TRL."""

from pathlib import Path

import streamlit as st

from rlaif.export import (
    DuplicateApproval,
    ExportFilters,
    ExportMismatch,
    approve,
    approved_bytes,
    earlier_approvals,
    export_approved,
    select_pairs,
)
from rlaif.workbench.evidence_view import keep, restore
from rlaif.workbench.fmt import fmt_id, fmt_num
from rlaif.workbench.page import page_context
from rlaif.workbench.tables import short, short_id

REVIEW_LIMIT = 1000  # rows in the review table; a larger selection is narrowed with the filters first
wb = page_context("export", "Your role may not approve or export pair sets.")
store = wb.store
st.title("Export")

runs = store.runs.list(limit=200)
if not runs:
    st.info("No runs yet: start one on the Runs page.")
    st.stop()
status = {r["run_id"]: r["status"] for r in runs}

# ---- select and review ----------------------------------------------------------------------------------------------
st.subheader("1 · Select and review")
c1, c2, c3, c4 = st.columns(4)
restore(st, "x.run", list(status))
run_id = c1.selectbox("Run", list(status), key="x.run", format_func=lambda r: f"{r} · {status[r]}")
keep(st, "x.run")  # the chosen run survives a visit to another page
if status[run_id] != "completed":
    c1.caption(f"This run is {status[run_id]}: only the pairs of its finished iterations are in the store.")
iterations = [i["iteration"] for i in store.iterations.list(run_id) if i["iteration"] > 0]
iteration = c2.selectbox("Iteration", [None, *iterations], format_func=lambda i: "all" if i is None else str(i),
                         key="x.iteration")
search = c3.text_input("Only pairs containing", key="x.search").strip() or None
min_conf = c4.number_input("Min judge confidence", 0.0, 1.0, 0.0, step=0.05, key="x.conf")
filters = ExportFilters(run_id, iteration, search, min_conf or None)
table = select_pairs(store, filters)
ids = table["pair_id"].to_pylist()
# the reviewer's rejections of THIS selection (new filters, new review); the editor below is drawn from them
rejected: set = st.session_state.setdefault(f"x.rej.{run_id}.{iteration}.{search}.{filters.min_confidence}", set())
rejected &= set(ids)
shown = table.slice(0, REVIEW_LIMIT).to_pylist()
edited = st.data_editor(
    [{"include": r["pair_id"] not in rejected, "pair": r["pair_id"], "prompt_id": r["prompt_id"],
      "iteration": r["iteration"], "confidence": fmt_num(r["judge_confidence"]), "prompt": short(r["prompt"], 50),
      "chosen": short(r["chosen"], 70), "rejected": short(r["rejected"], 70)} for r in shown],
    key=f"x.review.{run_id}.{iteration}.{search}.{filters.min_confidence}", hide_index=True, width="stretch",
    disabled=["pair", "prompt_id", "iteration", "confidence", "prompt", "chosen", "rejected"],
    column_config={"include": st.column_config.CheckboxColumn("include", width="small",
                                                              help="Untick to leave this pair out of the approval"),
                   "pair": st.column_config.TextColumn(width="medium"),
                   "prompt_id": st.column_config.TextColumn(width="small"),
                   "iteration": st.column_config.NumberColumn(width="small"),
                   "confidence": st.column_config.TextColumn(width="small"),
                   "chosen": st.column_config.TextColumn(width="large"),
                   "rejected": st.column_config.TextColumn(width="large")})
rejected.clear()
rejected.update(row["pair"] for row in edited if not row["include"])
n_included = len(ids) - len(rejected)
st.caption(f"{len(ids):,} kept pairs selected · {n_included:,} included · {len(rejected):,} rejected (dropped pairs "
           "are never exported)" + (f" · the table shows the first {REVIEW_LIMIT:,}: narrow the filters to review "
                                    "the rest" if len(ids) > REVIEW_LIMIT else ""))

# ---- approve --------------------------------------------------------------------------------------------------------
st.subheader("2 · Approve")
earlier = earlier_approvals(store, filters)
if earlier:
    last = earlier[0]
    st.warning(f"This selection (run {run_id}, iteration {'all' if iteration is None else iteration}, the same "
               f"filters) was approved already: approval {fmt_id(last['approval_id'])} by {last['approved_by']} at "
               f"{str(last['approved_at'])[:19]}, {last['n_pairs']:,} pairs, {len(last.get('rejected_pairs') or []):,} "
               f"rejected ({len(earlier)} approval(s) in all). Approving again records a second approval.")
    confirm = st.checkbox("Approve this selection again anyway", key="x.confirm")
else:
    confirm = False


def approve_now() -> None:
    try:
        approval = approve(store, filters, approved_by=wb.labeller, rejected=sorted(rejected),
                           confirm_duplicate=confirm)
    except (DuplicateApproval, ValueError) as err:
        st.session_state["x.msg"] = ("error", str(err))
        return
    st.session_state["x.approval"] = approval["approval_id"]
    st.session_state["x.confirm"] = False
    st.session_state["x.msg"] = ("success", f"Approved {approval['n_pairs']:,} pairs (approval "
                                            f"{fmt_id(approval['approval_id'])}, "
                                            f"{len(approval['rejected_pairs'] or []):,} rejected).")


st.button(f"Approve {n_included:,} pairs as {wb.labeller}", type="primary", on_click=approve_now,
          disabled=n_included == 0 or (bool(earlier) and not confirm))
if "x.msg" in st.session_state:
    kind, message = st.session_state.pop("x.msg")
    getattr(st, kind)(message)

approvals = store.approvals.list(run_id)
if not approvals:
    st.info("No approved set for this run yet.")
    st.stop()
st.dataframe([{"approval": fmt_id(a["approval_id"]), "iteration": "all" if a["iteration"] is None else a["iteration"],
               "pairs": fmt_num(a["n_pairs"]), "rejected": fmt_num(len(a.get("rejected_pairs") or [])),
               "approved_by": a["approved_by"], "approved_at": str(a["approved_at"])[:19],
               "filters": ", ".join(f"{k} {v}" for k, v in (a["filters"] or {}).items()
                                    if v is not None and k not in ("run_id", "iteration")) or "all kept pairs"}
              for a in approvals], hide_index=True, width="stretch")

# ---- export ---------------------------------------------------------------------------------------------------------
st.subheader("3 · Export")
approval_ids = [a["approval_id"] for a in approvals]
chosen = st.session_state.get("x.approval")
approval_id = st.selectbox("Approved set", approval_ids, index=approval_ids.index(chosen) if chosen in approval_ids
                           else 0, format_func=lambda a: next(
                               f"{fmt_id(x['approval_id'])} · {x['n_pairs']} pairs · {x['approved_by']}"
                               for x in approvals if x["approval_id"] == a))
out_dir = Path(st.text_input("Export folder", str(Path(wb.store_path).resolve().parent / "exports"), key="x.dir"))
try:
    if st.button("Write JSONL + Parquet"):
        paths = export_approved(store, approval_id, out_dir)
        st.success("Wrote " + " and ".join(str(p) for p in paths.values()))
    files = approved_bytes(store, approval_id)
except ExportMismatch as err:
    st.error(str(err))
    st.stop()
d1, d2 = st.columns(2)
stem = f"{run_id}-{short_id(approval_id)}"
d1.download_button("Download JSONL", files["jsonl"], f"{stem}.jsonl", "application/jsonl")
d2.download_button("Download Parquet", files["parquet"], f"{stem}.parquet", "application/vnd.apache.parquet")
st.caption(f"Approval {fmt_id(approval_id)}. Columns: prompt, chosen, rejected (TRL's preference format) + source, "
           "rubric_version, teacher_model, judge_confidence, run_id, iteration, pair_id, prompt_id, approval_id, "
           "approved_by. Rejected pairs are not in the files.")
