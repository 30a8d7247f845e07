"""Evidence, undo and per-pair export in a real browser (issue 14): Debian's headless Chromium via Playwright against
``streamlit run app.py`` at 1440x900.

The store is seeded BEFORE the server starts (the server holds the DuckDB file while it runs): a run whose pairs trace
to their candidates and verdicts (``seed_evidence_run``) and the sample's anchor set. Then: (1) a pair's judge
rationale and verifier checks are visible in Browse; (2) a label is undone in Label (the count goes back, the same pair
is shown again); (3) a pair unticked in Export is missing from the downloaded file. Screenshots go to
``test-artifacts/browser-evidence-*.png``; page-to-usable times (a reload, and a sidebar link from another page) to
``test-artifacts/browser-evidence-timings.json`` as figures, not assertions.
"""

from __future__ import annotations

import json

import pytest

from tests.browser_support import (  # noqa: F401
    ARTIFACTS,
    browser,
    open_page,
    press,
    pytestmark,
    shot,
    streamlit_server,
    sync_api,
    usable_after,
)
from tests.workbench_fixtures import SAMPLE, seed_evidence_run

TIMINGS: dict[str, float] = {}


def settled_shot(page, name: str) -> None:
    """A screenshot once the rerun has finished (mid-rerun Streamlit greys out the elements it has not redrawn)."""
    sync_api.expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=30_000)
    shot(page, name)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from rlaif.anchors import import_anchor_file
    from store import Store

    tmp = tmp_path_factory.mktemp("evidence")
    with Store(tmp / "wb.duckdb") as store:
        seed_evidence_run(store)
        import_anchor_file(store, SAMPLE / "anchors.jsonl")
    with streamlit_server(tmp, "browser-evidence-server.log") as (url, proc):
        yield url, tmp, proc
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-evidence-timings.json").write_text(json.dumps(TIMINGS, indent=2))


def test_browse_shows_a_pairs_rationale_and_verifier_checks(server, browser):
    url, _, _ = server
    page = open_page(browser, url, "browse", height=2400)
    TIMINGS["browse"] = usable_after(page, lambda: page.reload(), page.get_by_text("pairs match"))
    page.get_by_text("the good answer filters region East (A)").wait_for()
    page.get_by_text("the good answer filters region East (B)").wait_for()
    page.get_by_text("chosen: 2 of 2 checks pass").wait_for()
    page.get_by_text("rejected: 1 of 2 checks pass").wait_for()
    page.get_by_text("What was the total revenue in the East region in 2025?").first.wait_for()
    rejected_pane = page.locator('.rlaif-diff[data-side="rejected"]')
    assert "<script>alert(1)</script>" in rejected_pane.inner_text()  # hostile text shown as text, not run
    assert rejected_pane.locator("script").count() == 0
    settled_shot(page, "evidence-browse-pair")
    page.get_by_role("button", name="All 2 verdicts on e0").click()
    page.get_by_text("2 verdicts").first.wait_for()
    settled_shot(page, "evidence-browse-verdicts")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Run").first.click()  # pick the run: type, Enter
    page.keyboard.type("run-evidence")
    page.keyboard.press("Enter")
    page.get_by_text("Evals", exact=True).click()
    page.get_by_text("Held-out outputs beside the base model's").wait_for()
    page.locator('.rlaif-diff[data-side="iteration 0 (base)"]').wait_for()
    settled_shot(page, "evidence-browse-evals")
    page.get_by_text("Manifests", exact=True).click()
    page.get_by_text("rlaif reproduce").wait_for()
    page.get_by_role("button", name="Download manifest (JSON)").wait_for()
    settled_shot(page, "evidence-browse-manifest")
    TIMINGS["browse -> export (sidebar link)"] = usable_after(
        page, lambda: page.get_by_role("link", name="Export").click(), page.get_by_text("kept pairs selected"))
    TIMINGS["export -> browse (sidebar link)"] = usable_after(
        page, lambda: page.get_by_role("link", name="Browse").click(), page.get_by_text("Open manifest"))
    page.context.close()


def test_undo_in_label_shows_the_same_pair_again(server, browser):
    url, _, _ = server
    page = open_page(browser, url, "label", height=1600)
    page.get_by_role("heading", name="Label").wait_for()
    TIMINGS["label"] = usable_after(page, lambda: page.reload(), page.get_by_role("button", name="Left is better"))
    page.get_by_text("0 of 92 labelled").wait_for()
    page.get_by_text("Guidelines").wait_for()
    left = page.locator('.rlaif-diff[data-side="Left"]')
    first = left.inner_text()
    settled_shot(page, "evidence-label-before")
    press(page, "Left is better")
    page.get_by_text("1 of 92 labelled").wait_for()
    sync_api.expect(left).not_to_have_text(first, use_inner_text=True)
    settled_shot(page, "evidence-label-labelled")
    press(page, "Undo last label")
    page.get_by_text("0 of 92 labelled").wait_for()
    sync_api.expect(left).to_have_text(first, use_inner_text=True)  # the same pair again
    page.get_by_text("that pair is shown again").wait_for()
    settled_shot(page, "evidence-label-undone")
    TIMINGS["label -> browse (sidebar link)"] = usable_after(
        page, lambda: page.get_by_role("link", name="Browse").click(), page.get_by_text("pairs match"))
    TIMINGS["browse -> label (sidebar link)"] = usable_after(
        page, lambda: page.get_by_role("link", name="Label").click(), page.get_by_role("button", name="Tie"))
    page.context.close()


def test_a_pair_rejected_in_export_is_missing_from_the_downloaded_file(server, browser):
    url, _, _ = server
    page = open_page(browser, url, "export", height=1400)
    TIMINGS["export"] = usable_after(page, lambda: page.reload(), page.get_by_text("kept pairs selected"))
    page.get_by_text("3 kept pairs selected · 3 included · 0 rejected").wait_for()
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    box = grid.bounding_box()
    # the review table is a canvas grid: header row, then one 35 px row per pair; "include" is the first column.
    # A click selects the second pair's checkbox cell, Space toggles it (what a keyboard user does too)
    page.mouse.click(box["x"] + 30, box["y"] + 35 + 35 * 1 + 17)
    page.keyboard.press("Space")
    page.get_by_text("3 kept pairs selected · 2 included · 1 rejected").wait_for()
    settled_shot(page, "evidence-export-rejected")
    page.get_by_role("button", name="Approve 2 pairs").click()
    page.get_by_text("Approved 2 pairs").wait_for()
    page.get_by_text("approved already").wait_for()  # the same selection again would be a duplicate
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSONL").click()
    target = ARTIFACTS / "browser-evidence-export.jsonl"
    download.value.save_as(target)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["pair_id"] for r in rows] == ["run-evidence-pair-0", "run-evidence-pair-2"]
    settled_shot(page, "evidence-export-approved")
    page.context.close()
