"""A word-level difference highlight between two model texts, as escaped HTML panes for ``st.html``.

Why: near-identical responses (one changed column, one missing filter) look the same at a glance, so a reader or an
annotator needs the differing words marked. Model text is hostile: every token is ``html.escape``d before it is
wrapped in a mark, and the only markup in the result is this module's own (``<div>``, ``<span>`` with fixed inline
styles), so a response that contains ``<script>`` or Markdown shows as those characters, never as markup.

    left_html, right_html, shared = diff_panes("SELECT a FROM t", "SELECT b FROM t")   # "a" and "b" are marked
"""

from __future__ import annotations

import difflib
import html
import re

#: Token = a run of word characters or one other character, each with the whitespace after it (so punctuation diffs
#: finely, and whitespace does not double the tokens difflib has to match: it is quadratic in the worst case).
_TOKEN = re.compile(r"\w+\s*|[^\w\s]\s*|\s+", re.UNICODE)
#: Beyond this many tokens a side, diff by lines instead (difflib is quadratic in the worst case).
MAX_WORD_TOKENS = 3000
_PANE = ("white-space:pre-wrap;overflow-wrap:anywhere;font-family:'Source Code Pro',monospace;font-size:0.85rem;"
         "line-height:1.45;padding:0.6rem 0.75rem;border-radius:0.5rem;background:rgba(128,128,128,0.08);"
         "margin:0")
_MARK = {"removed": "background:rgba(255,75,75,0.28);border-radius:2px",
         "added": "background:rgba(33,195,84,0.30);border-radius:2px"}


def tokens(text: str) -> list[str]:
    text = text or ""
    parts = _TOKEN.findall(text)
    if len(parts) > MAX_WORD_TOKENS:
        return text.splitlines(keepends=True)
    return parts


def diff_spans(left: str, right: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]], float]:
    """Each side as (token, differs) runs (``differs`` marks what the other side does not have at that place), and
    the share of tokens the two have in common (1.0 = identical)."""
    a, b = tokens(left), tokens(right)
    if (len(a) > MAX_WORD_TOKENS) != (len(b) > MAX_WORD_TOKENS):  # one side fell back to lines: both do
        a, b = (left or "").splitlines(keepends=True), (right or "").splitlines(keepends=True)
    out_a: list[tuple[str, bool]] = []
    out_b: list[tuple[str, bool]] = []
    # match on the words alone: "1;" then a newline and "1;" at the end of the text are the same word
    matcher = difflib.SequenceMatcher(None, [t.strip() or t for t in a], [t.strip() or t for t in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if i2 > i1:
            out_a.append(("".join(a[i1:i2]), op != "equal"))
        if j2 > j1:
            out_b.append(("".join(b[j1:j2]), op != "equal"))
    return out_a, out_b, matcher.ratio() if a or b else 1.0


def _marked(text: str, mark: str) -> str:
    core = text.rstrip()  # the whitespace after the last differing word is not part of the difference
    return f'<span style="{_MARK[mark]}">{html.escape(core)}</span>{html.escape(text[len(core):])}'


def _pane(runs: list[tuple[str, bool]], mark: str, title: str) -> str:
    body = "".join(_marked(text, mark) if differs and text.strip() else html.escape(text) for text, differs in runs)
    return (f'<div class="rlaif-diff" data-side="{html.escape(title)}">'
            f'<div style="font-size:0.8rem;opacity:0.7;margin-bottom:0.2rem">{html.escape(title)}</div>'
            f'<div style="{_PANE}">{body or "—"}</div></div>')


def diff_panes(left: str | None, right: str | None, titles: tuple[str, str] = ("left", "right")
               ) -> tuple[str, str, float]:
    """Two HTML panes (words only on the left marked red, words only on the right green) and the shared share."""
    runs_a, runs_b, shared = diff_spans(left or "", right or "")
    return _pane(runs_a, "removed", titles[0]), _pane(runs_b, "added", titles[1]), shared
