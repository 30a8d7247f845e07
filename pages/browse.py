"""Browse: pairs with the evidence that decided them (verdicts, verifier checks, the texts' differences), the judge's
verdicts, sampled candidates, held-out outputs beside the base model's, and manifests as cards.

Pairs, verdicts and candidates link to each other: a link button sets the other view's filters in the session and
switches the view (Streamlit has no anchors within a page)."""

from pathlib import Path

import streamlit as st

from rlaif.workbench.evidence import (
    check_rows,
    checks_summary,
    criteria_rows,
    held_out_beside_base,
    manifest_card,
    pair_evidence,
    reproduce_command,
)
from rlaif.workbench.evidence_view import keep, restore, show_checks, show_manifest, show_matches, show_texts
from rlaif.workbench.fmt import fmt_id, fmt_num
from rlaif.workbench.page import page_context
from rlaif.workbench.tables import (
    PAGE_SIZE,
    candidate_table,
    column_widths,
    eval_table,
    judgement_table,
    manifest_chain,
    pair_table,
)

CANDIDATE_PAGE = 1000
wb = page_context("browse", "Your role may not browse runs, verdicts or pairs.")
store = wb.store
st.title("Browse")

runs = store.runs.list(limit=200)
VIEWS = ["Pairs", "Judgements", "Candidates", "Evals", "Manifests"]
run_options = [None, *[r["run_id"] for r in runs]]
restore(st, "b.run", run_options)
restore(st, "b.view", VIEWS)
c1, c2 = st.columns([2, 3])
run_id = c1.selectbox("Run", run_options, key="b.run", format_func=lambda r: "all runs" if r is None else r)
view = c2.radio("Show", VIEWS, horizontal=True, key="b.view")
keep(st, "b.run", "b.view")  # the run and view survive a visit to another page
iterations = [i["iteration"] for i in store.iterations.list(run_id)] if run_id else []
highlight = st.toggle("Highlight differences", True, key="b.diff")


def table(rows: list[dict], **kwargs) -> None:
    widths = column_widths(rows)
    st.dataframe(rows, hide_index=True, width="stretch", **kwargs,
                 column_config={k: st.column_config.Column(width=w) for k, w in widths.items()})


def jump(view_name: str, **state) -> None:
    """A link: set the target view's filters, then switch to it (runs before the rerun, so widgets take them)."""
    for key, value in state.items():
        st.session_state[key] = value
    st.session_state["b.view"] = view_name


def any_iteration(key: str, label: str = "Iteration", options=None):
    options = [None, *iterations] if options is None else options
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return st.selectbox(label, options, key=key, format_func=lambda i: "any" if i is None else str(i))


if view == "Pairs":
    f1, f2, f3, f4 = st.columns(4)
    with f1:
        iteration = any_iteration("b.piter")
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
    table(pair_table(rows))
    if rows:
        by_id = {r["pair_id"]: r for r in rows}
        pick = st.selectbox("Open pair", list(by_id), key="b.pair",
                            format_func=lambda p: f"{by_id[p]['prompt_id']} · {p if len(p) <= 24 else fmt_id(p)}")
        pair = by_id[pick]
        ev = pair_evidence(store, pair)
        st.caption(f"{'kept' if pair['kept'] else 'dropped: ' + str(pair['drop_reason'])} · judge {pair['judge_id']}"
                   f" · confidence {fmt_num(pair['confidence'])} · scores {fmt_num(pair['chosen_score'])} vs "
                   f"{fmt_num(pair['rejected_score'])} · source {pair['source']} · rubric "
                   f"{fmt_id(pair['rubric_version'])} · iteration {pair['iteration']}")
        st.caption("Prompt")
        st.text(ev.prompt)  # model and user text is shown as text, never rendered as Markdown or HTML
        show_texts(st, pair["chosen"], pair["rejected"], ("chosen", "rejected"), highlight=highlight)
        show_matches(st, ev)
        show_checks(st, ev)
        l1, l2, _ = st.columns([2, 2, 3])
        l1.button(f"All {ev.prompt_judgements:,} verdicts on {pair['prompt_id']} →", key="b.to_j",
                  on_click=jump, args=("Judgements",),
                  kwargs={"b.jiter": pair["iteration"], "b.jprompt": pair["prompt_id"], "b.jcand": None,
                          "b.jpage": 1})
        l2.button(f"Candidates of {pair['prompt_id']} →", key="b.to_c", on_click=jump, args=("Candidates",),
                  kwargs={"b.citer": pair["iteration"], "b.cprompt": pair["prompt_id"], "b.cpage": 1})

elif view == "Judgements":
    f1, f2, f3 = st.columns(3)
    with f1:
        iteration = any_iteration("b.jiter")
    prompt_id = f2.text_input("Prompt id (empty = all)", key="b.jprompt").strip() or None
    candidate = st.session_state.get("b.jcand")
    if candidate:
        st.caption(f"Only verdicts with candidate {fmt_id(candidate)}")
        st.button("Show verdicts of every candidate", on_click=jump, args=("Judgements",), kwargs={"b.jcand": None})
    counts = store.judgements.count_by_winner(run_id, iteration, prompt_id, candidate)
    pages = max(1, -(-sum(counts.values()) // PAGE_SIZE))
    if st.session_state.get("b.jpage", 1) > pages:
        st.session_state["b.jpage"] = 1
    page = f3.number_input("Page", 1, pages, key="b.jpage")
    st.caption(f"{sum(counts.values()):,} verdicts · " + " · ".join(f"{k}: {v:,}" for k, v in counts.items()))
    rows = store.judgements.list(run_id, iteration, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
                                 prompt_id=prompt_id, candidate=candidate)
    table(judgement_table(rows))
    if rows:
        by_id = {r["judgement_id"]: r for r in rows}
        pick = st.selectbox("Open judgement", list(by_id), key="b.judgement",
                            format_func=lambda j: f"{by_id[j]['prompt_id']} · {by_id[j]['winner']} · {fmt_id(j)}")
        j = by_id[pick]
        cands = store.candidates.get_many([j["candidate_a"], j["candidate_b"]])
        st.markdown(f"**Winner:** `{j['winner']}` · confidence {fmt_num(j['confidence'])} · judge `{j['judge_id']}`")
        st.caption(f"Question ({j['prompt_id']})")
        st.text(store.pairs.prompt_text(j["run_id"], j["prompt_id"]) or j["prompt_id"] or "—")
        st.caption("Rationale")
        st.text(j["rationale"] or "—")
        if j["criteria"]:
            st.dataframe([{"criterion": r["criterion"], "A": r["chosen"], "B": r["rejected"]}
                          for r in criteria_rows(j["criteria"], "chosen", "rejected")], hide_index=True)
        with st.expander("Raw reply"):
            st.code(j["raw_reply"] or "(no reply text: a local judge)", language=None, wrap_lines=True)
        text_a, text_b = ((cands.get(j[c]) or {}).get("text") for c in ("candidate_a", "candidate_b"))
        show_texts(st, text_a, text_b, ("A", "B"), highlight=highlight)
        if j["run_id"]:
            l1, l2, _ = st.columns([2, 2, 3])
            l1.button(f"Pairs of {j['prompt_id']} →", key="b.j_to_p", on_click=jump, args=("Pairs",),
                      kwargs={"b.search": j["prompt_id"], "b.piter": j["iteration"]})
            l2.button(f"Candidates of {j['prompt_id']} →", key="b.j_to_c", on_click=jump, args=("Candidates",),
                      kwargs={"b.citer": j["iteration"], "b.cprompt": j["prompt_id"], "b.cpage": 1})

elif view == "Candidates":
    if not run_id:
        st.info("Pick a run to see its sampled candidates.")
    else:
        f1, f2, f3 = st.columns(3)
        with f1:
            iteration = any_iteration("b.citer", options=[None, *[i for i in iterations if i > 0]])
        prompt_id = f2.text_input("Prompt id (empty = all)", key="b.cprompt").strip() or None
        total = store.candidates.count(run_id, iteration, prompt_id)
        pages = max(1, -(-total // CANDIDATE_PAGE))
        if st.session_state.get("b.cpage", 1) > pages:
            st.session_state["b.cpage"] = 1
        page = f3.number_input("Page", 1, pages, key="b.cpage")
        rows = store.candidates.list(run_id, iteration, prompt_id, limit=CANDIDATE_PAGE,
                                     offset=(page - 1) * CANDIDATE_PAGE)
        first = (page - 1) * CANDIDATE_PAGE
        st.caption(f"showing {first + 1:,}–{first + len(rows):,} of {total:,} candidates" if len(rows) < total
                   else f"{total:,} candidates")
        table(candidate_table(rows))
        if rows:
            by_id = {r["candidate_id"]: r for r in rows}
            pick = st.selectbox("Open candidate", list(by_id), key="b.cand", format_func=lambda c: (
                f"{by_id[c]['prompt_id']} · sample {by_id[c]['sample_index']} · {fmt_id(c)}"))
            cand = by_id[pick]
            st.caption(f"Prompt ({cand['prompt_id']})")
            st.text(store.pairs.prompt_text(run_id, cand["prompt_id"]) or cand["prompt_id"])
            st.code(cand["text"] or "—", language=None, wrap_lines=True)
            checks = check_rows(cand.get("verification"))
            st.caption(f"Verifier: {checks_summary(checks)}")
            if checks:
                st.dataframe(checks, hide_index=True)
            st.button("Verdicts with this candidate →", key="b.c_to_j", on_click=jump, args=("Judgements",),
                      kwargs={"b.jiter": cand["iteration"], "b.jprompt": cand["prompt_id"],
                              "b.jcand": cand["candidate_id"], "b.jpage": 1})

elif view == "Evals":
    if not run_id:
        st.info("Pick a run to see its held-out evaluation.")
    else:
        table(eval_table(store.evals.for_run(run_id)))
        st.subheader("Held-out outputs beside the base model's")
        prompt_ids = store.eval_outputs.prompt_ids(run_id)
        if not prompt_ids:
            st.info("No held-out outputs stored for this run.")
        else:
            e1, e2 = st.columns(2)
            prompt_id = e1.selectbox("Held-out prompt", prompt_ids, key="b.eprompt")
            outputs = held_out_beside_base(store, run_id, prompt_id)
            later = [o["iteration"] for o in outputs if o["iteration"] > 0]
            it = e2.selectbox("Compare iteration", later or [0], index=len(later) - 1 if later else 0, key="b.eiter")
            st.caption("Question")
            st.text(store.pairs.prompt_text(run_id, prompt_id) or prompt_id)
            by_it = {o["iteration"]: o for o in outputs}
            base, new = by_it.get(0), by_it.get(it)
            show_texts(st, (base or {}).get("output"), (new or {}).get("output"),
                       ("iteration 0 (base)", f"iteration {it}"), highlight=highlight)
            cols = st.columns(2)
            for col, out in zip(cols, (base, new)):
                if out and out["checks"]:
                    col.dataframe(out["checks"], hide_index=True, width="stretch")

else:
    if not run_id:
        st.info("Pick a run to see its manifests and provenance chain.")
    else:
        chain = manifest_chain(store, run_id)
        st.caption(" → ".join(f"{m['iteration']}:{fmt_id(m['manifest_id'])}{'' if m['verified'] else ' ✗'}"
                              for m in chain) or "no manifest yet: an iteration writes its manifest last")
        if chain:
            table([{"iteration": m["iteration"], "kind": m["kind"], "manifest": fmt_id(m["manifest_id"]),
                    "gate": m["gate"], "verified": m["verified"], "parents stored": m["parents_stored"],
                    "model": m["model_hash"], "dataset": m["dataset_hash"], "rubric": m["rubric_version"]}
                   for m in chain])
            ids = [m["manifest_id"] for m in chain]
            pick = st.selectbox("Open manifest", ids, index=len(ids) - 1, key="b.manifest",
                                format_func=lambda i: next(f"iteration {m['iteration']} · {m['kind']} · {fmt_id(i)}"
                                                           for m in chain if m["manifest_id"] == i))
            body = next(m["body"] for m in chain if m["manifest_id"] == pick)
            command = reproduce_command(body, str(Path(wb.store_path).resolve()))
            show_manifest(st, manifest_card(body), body, command)
