"""Streamlit views of evidence shared by the Browse and Label pages: two texts with their differences marked, a
pair's verdicts and verifier checks, a manifest card.

Why a module: Browse shows the same evidence for pairs, verdicts and held-out outputs, and Label shows the same
difference highlight; one renderer keeps them alike. Only pages import streamlit (tests/test_layers.py), so a page
passes its ``st`` in as the first argument. Model text only ever reaches the screen as ``st.text``/``st.code``
or as :mod:`rlaif.workbench.diff_view`'s escaped panes, never as Markdown or unescaped HTML.

    show_texts(st, chosen, rejected, ("chosen", "rejected"), highlight=True)     # in a page
"""

from __future__ import annotations

import html
import json

from rlaif.workbench.diff_view import diff_panes
from rlaif.workbench.evidence import ManifestCard, PairEvidence, checks_summary, manifest_download_name
from rlaif.workbench.fmt import fmt_num
from rlaif.workbench.tables import code_language


def restore(st, key: str, options=None) -> None:
    """Put a widget's last value back before it is drawn: Streamlit drops the state of widgets a run did not draw, so
    a visit to another page would reset the run and view a user chose. The value is mirrored under ``keep.<key>`` by
    :func:`keep`; a value no longer among ``options`` is forgotten."""
    shadow = f"keep.{key}"
    if key not in st.session_state and shadow in st.session_state:
        if options is None or st.session_state[shadow] in options:
            st.session_state[key] = st.session_state[shadow]


def keep(st, *keys: str) -> None:
    """Mirror widget values under plain keys (which survive page changes), for :func:`restore`."""
    for key in keys:
        if key in st.session_state:
            st.session_state[f"keep.{key}"] = st.session_state[key]


def show_texts(st, a: str | None, b: str | None, labels: tuple[str, str], *, highlight: bool = True) -> None:
    """Two texts side by side; with ``highlight`` the words that differ are marked (escaped HTML panes), else each
    is a code block (syntax colours for SQL/Python). Long lines wrap in both."""
    left, right = st.columns(2)
    if highlight:
        pane_a, pane_b, shared = diff_panes(a, b, labels)
        left.html(pane_a)
        right.html(pane_b)
        st.caption(f"Differences marked: red only in {labels[0]}, green only in {labels[1]} · "
                   f"{shared:.0%} of words shared")
    else:
        for col, label, text in ((left, labels[0], a), (right, labels[1], b)):
            col.caption(label)
            col.code(text or "—", language=code_language(text), wrap_lines=True)


def show_checks(st, ev: PairEvidence) -> None:
    """The verifier's checks of both candidates, side by side."""
    st.markdown("**Verifier checks**")
    cols = st.columns(2)
    for col, side in zip(cols, ("chosen", "rejected")):
        rows = ev.checks.get(side) or []
        col.caption(f"{side}: {checks_summary(rows)}")
        if rows:
            col.dataframe(rows, hide_index=True, width="stretch",
                          column_config={"check": st.column_config.TextColumn(width="medium"),
                                         "result": st.column_config.TextColumn(width="large")})


def show_matches(st, ev: PairEvidence) -> None:
    """Each judge call between the two candidates: who won, the rationale, the per-criterion assessment."""
    st.markdown(f"**Judge verdicts that decided this pair** ({len(ev.matches)})")
    if not ev.matches:
        st.caption("No stored verdict between exactly these two candidates (a blended or imported pair, or a "
                   "judge that ranked all candidates at once).")
    for k, m in enumerate(ev.matches, 1):
        with st.container(border=True):
            st.caption(f"Match {k} · judge {m.judge_id} · winner: {m.winner} · confidence {fmt_num(m.confidence)}"
                       f" · {m.first_shown} shown first")
            st.text(m.rationale or "(no rationale)")
            if m.criteria:
                st.dataframe(m.criteria, hide_index=True, width="stretch")
            if m.raw_reply:
                with st.expander("Raw reply"):
                    st.code(m.raw_reply, language=None, wrap_lines=True)


def facts_html(facts: list[tuple[str, str, str]]) -> str:
    """Facts as a 4-column grid of escaped label/value cells; the full value (a 64-character hash) is the hover
    title, so the card stays readable at 1440px and nothing is lost."""
    cells = "".join(
        f'<div class="rlaif-fact" title="{html.escape(full or value)}"><div style="font-size:0.75rem;opacity:0.65">'
        f'{html.escape(label)}</div><div style="font-size:1.05rem;overflow-wrap:anywhere">{html.escape(value)}'
        "</div></div>" for label, value, full in facts)
    return (f'<div class="rlaif-card" style="display:grid;grid-template-columns:repeat(4,minmax(0,1fr));'
            f'gap:0.6rem 1.2rem;margin-bottom:0.4rem">{cells}</div>')


def show_manifest(st, card: ManifestCard, body: dict, command: str) -> None:
    """A manifest as a card: facts (12-character ids, the full value on hover), metrics with changes, a JSON
    download and the exact ``rlaif reproduce`` line to copy."""
    with st.container(border=True):
        st.subheader(card.title)
        st.html(facts_html(card.facts))
        if card.metrics:
            st.dataframe(card.metrics, hide_index=True, width="stretch")
        st.download_button("Download manifest (JSON)", json.dumps(body, indent=2, sort_keys=True, default=str),
                           manifest_download_name(body), "application/json", key=f"b.mdl.{body.get('manifest_id')}")
        st.caption("Reproduce: re-run this iteration from its manifest and compare field by field")
        st.code(command, language="bash", wrap_lines=True)
        with st.expander("Full manifest"):
            st.json(body, expanded=False)
