"""Browse: pairs (filters + keyset paging that stays fast at a million rows), judgements, candidates, evals and
manifests."""

import streamlit as st

from rlaif.workbench.page import page_context
from rlaif.workbench.tables import (
    PAGE_SIZE,
    candidate_table,
    code_language,
    eval_table,
    judgement_table,
    manifest_chain,
    pair_table,
)

wb = page_context("browse", "Your role may not browse runs, verdicts or pairs.")
store = wb.store
st.title("Browse")

runs = store.runs.list(limit=200)
run_ids = [r["run_id"] for r in runs]
c1, c2 = st.columns([2, 3])
run_id = c1.selectbox("Run", [None, *run_ids], format_func=lambda r: "all runs" if r is None else r, key="b.run")
view = c2.radio("Show", ["Pairs", "Judgements", "Candidates", "Evals", "Manifests"], horizontal=True, key="b.view")
iterations = [i["iteration"] for i in store.iterations.list(run_id)] if run_id else []


def show_texts(prompt: str, a: str | None, b: str | None, labels=("chosen", "rejected")) -> None:
    st.text(prompt)  # model and user text is shown as text, never rendered as Markdown or HTML
    left, right = st.columns(2)
    for col, label, text in ((left, labels[0], a), (right, labels[1], b)):
        col.caption(label)
        col.code(text or "—", language=code_language(text), wrap_lines=True)


if view == "Pairs":
    f1, f2, f3, f4 = st.columns(4)
    iteration = f1.selectbox("Iteration", [None, *iterations], format_func=lambda i: "any" if i is None else str(i))
    kept = f2.selectbox("Kept", [None, True, False],
                        format_func=lambda k: {None: "kept and dropped", True: "kept", False: "dropped"}[k])
    reasons = list(store.pairs.drop_reasons(run_id, iteration)) if run_id and kept is not True else []
    reason = f3.selectbox("Drop reason", [None, *reasons], format_func=lambda r: "any" if r is None else r)
    search = f4.text_input("Search text or prompt id", key="b.search").strip() or None
    filters = dict(run_id=run_id, iteration=iteration, kept=kept, drop_reason=reason, search=search)
    signature = repr(sorted(filters.items()))
    if st.session_state.get("b.sig") != signature:  # new filters: back to the first page
        st.session_state["b.sig"], st.session_state["b.cursor"] = signature, [None]
    cursor = st.session_state["b.cursor"]
    rows = store.pairs.page(**filters, after=cursor[-1], limit=PAGE_SIZE)
    total = store.pairs.count(**filters)
    st.caption(f"{total:,} pairs match · page {len(cursor)} of {max(1, -(-total // PAGE_SIZE)):,}")
    p1, p2, _ = st.columns([1, 1, 6])
    p1.button("‹ Previous", disabled=len(cursor) == 1, on_click=lambda: cursor.pop())
    p2.button("Next ›", disabled=len(rows) < PAGE_SIZE,
              on_click=lambda last=rows[-1]["pair_id"] if rows else None: cursor.append(last))
    st.dataframe(pair_table(rows), hide_index=True)
    if rows:
        by_id = {r["pair_id"]: r for r in rows}
        pick = st.selectbox("Open pair", list(by_id), format_func=lambda p: f"{by_id[p]['prompt_id']} · {p[:12]}")
        pair = by_id[pick]
        st.caption(f"{'kept' if pair['kept'] else 'dropped: ' + str(pair['drop_reason'])} · judge {pair['judge_id']}"
                   f" · confidence {pair['confidence']} · scores {pair['chosen_score']} vs {pair['rejected_score']}"
                   f" · source {pair['source']} · rubric {str(pair['rubric_version'])[:12]}")
        show_texts(pair["prompt"], pair["chosen"], pair["rejected"])

elif view == "Judgements":
    f1, f2 = st.columns(2)
    iteration = f1.selectbox("Iteration", [None, *iterations], format_func=lambda i: "any" if i is None else str(i))
    counts = store.judgements.count_by_winner(run_id, iteration)
    pages = max(1, -(-sum(counts.values()) // PAGE_SIZE))
    page = f2.number_input("Page", 1, pages, 1, key="b.jpage")
    st.caption(" · ".join(f"{k}: {v:,}" for k, v in counts.items()))
    rows = store.judgements.list(run_id, iteration, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    st.dataframe(judgement_table(rows), hide_index=True)
    if rows:
        by_id = {r["judgement_id"]: r for r in rows}
        pick = st.selectbox("Open judgement", list(by_id),
                            format_func=lambda j: f"{by_id[j]['prompt_id']} · {by_id[j]['winner']} · {j[:12]}")
        j = by_id[pick]
        texts = {c["candidate_id"]: c["text"] for c in store.candidates.list(j["run_id"], j["iteration"],
                                                                              j["prompt_id"])} if j["run_id"] else {}
        st.markdown(f"**Winner:** `{j['winner']}` · confidence {j['confidence']} · judge `{j['judge_id']}`")
        st.caption("Rationale")
        st.text(j["rationale"] or "—")
        st.caption("Raw reply")
        st.code(j["raw_reply"] or "(no reply text: a local judge)", language=None, wrap_lines=True)
        if j["criteria"]:
            st.json(j["criteria"], expanded=False)
        show_texts(j["prompt_id"] or "", texts.get(j["candidate_a"]), texts.get(j["candidate_b"]), ("A", "B"))

elif view == "Candidates":
    if not run_id:
        st.info("Pick a run to see its sampled candidates.")
    else:
        f1, f2 = st.columns(2)
        iteration = f1.selectbox("Iteration", [i for i in iterations if i > 0] or [None])
        prompt_id = f2.text_input("Prompt id (empty = all)", key="b.cprompt").strip() or None
        rows = store.candidates.list(run_id, iteration, prompt_id)
        st.caption(f"{len(rows):,} candidates")
        st.dataframe(candidate_table(rows[:1000]), hide_index=True)

elif view == "Evals":
    if not run_id:
        st.info("Pick a run to see its held-out evaluation.")
    else:
        st.dataframe(eval_table(store.evals.for_run(run_id)), hide_index=True)

else:
    if not run_id:
        st.info("Pick a run to see its manifests and provenance chain.")
    else:
        chain = manifest_chain(store, run_id)
        st.dataframe([{k: v for k, v in m.items() if k != "body"} for m in chain], hide_index=True)
        st.caption(" → ".join(f"{m['iteration']}:{m['manifest_id'][:10]}{'' if m['verified'] else ' ✗'}"
                              for m in chain) or "no manifest yet: an iteration writes its manifest last")
        if chain:
            pick = st.selectbox("Open manifest", [m["manifest_id"] for m in chain])
            st.json(next(m["body"] for m in chain if m["manifest_id"] == pick), expanded=False)
