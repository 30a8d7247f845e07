"""Export: pick a run's kept pairs, review them, approve the set (who and when are recorded), export it for TRL."""

from pathlib import Path

import streamlit as st

from rlaif.export import ExportFilters, ExportMismatch, approve, approved_bytes, export_approved, select_pairs
from rlaif.workbench.page import page_context
from rlaif.workbench.tables import pair_table, short_id

wb = page_context("export", "Your role may not approve or export pair sets.")
store = wb.store
st.title("Export")

runs = store.runs.list(limit=200)
if not runs:
    st.info("No runs yet: start one on the Runs page.")
    st.stop()

# ---- select and review ----------------------------------------------------------------------------------------------
st.subheader("1 · Select")
c1, c2, c3, c4 = st.columns(4)
run_id = c1.selectbox("Run", [r["run_id"] for r in runs], key="x.run")
iterations = [i["iteration"] for i in store.iterations.list(run_id) if i["iteration"] > 0]
iteration = c2.selectbox("Iteration", [None, *iterations], format_func=lambda i: "all" if i is None else str(i),
                         key="x.iteration")
search = c3.text_input("Only pairs containing", key="x.search").strip() or None
min_conf = c4.number_input("Min judge confidence", 0.0, 1.0, 0.0, step=0.05, key="x.conf")
filters = ExportFilters(run_id, iteration, search, min_conf or None)
table = select_pairs(store, filters)
st.caption(f"{table.num_rows:,} kept pairs selected (dropped pairs are never exported).")
st.dataframe(pair_table([{**r, "judge_id": r["teacher_model"], "confidence": r["judge_confidence"], "kept": True,
                          "drop_reason": None} for r in table.slice(0, 20).to_pylist()]), hide_index=True)

# ---- approve --------------------------------------------------------------------------------------------------------
st.subheader("2 · Approve")
if st.button(f"Approve {table.num_rows:,} pairs as {wb.labeller}", disabled=table.num_rows == 0, type="primary"):
    approval = approve(store, filters, approved_by=wb.labeller)
    st.session_state["x.approval"] = approval["approval_id"]
    st.success(f"Approved {approval['n_pairs']:,} pairs (approval {short_id(approval['approval_id'])}).")

approvals = store.approvals.list(run_id)
if not approvals:
    st.info("No approved set for this run yet.")
    st.stop()
st.dataframe([{"approval": short_id(a["approval_id"]), "iteration": a["iteration"], "pairs": a["n_pairs"],
               "approved_by": a["approved_by"], "approved_at": a["approved_at"], "filters": a["filters"]}
              for a in approvals], hide_index=True)

# ---- export ---------------------------------------------------------------------------------------------------------
st.subheader("3 · Export")
ids = [a["approval_id"] for a in approvals]
chosen = st.session_state.get("x.approval")
approval_id = st.selectbox("Approved set", ids, index=ids.index(chosen) if chosen in ids else 0,
                           format_func=lambda a: next(f"{short_id(x['approval_id'])} · {x['n_pairs']} pairs · "
                                                      f"{x['approved_by']}" for x in approvals
                                                      if x["approval_id"] == a))
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
st.caption("Columns: prompt, chosen, rejected (TRL's preference format) + source, rubric_version, teacher_model, "
           "judge_confidence, run_id, iteration, pair_id, prompt_id, approval_id, approved_by.")
