"""The workbench in a real browser: Debian's headless Chromium, driven by Playwright, against ``streamlit run``.

Opens the app on the bundled sample (127.0.0.1), labels two of its anchor pairs (a click and a keyboard shortcut),
starts a short run of the sample (8 training prompts, one iteration) and watches the charts appear, approves and exports
a pair set (downloading the JSONL), and has two browser sessions label at the same time without losing a label.
Screenshots and the server log go to ``test-artifacts/``.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; never ``playwright install``); skipped without it.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser_support import (  # noqa: F401
    ARTIFACTS,
    browser,
    fill_number,
    open_page,
    press,
    pytestmark,
    shot,
    streamlit_server,
    sync_api,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    with streamlit_server(tmp, "browser-server.log") as (url, proc):
        yield url, tmp, proc


def set_labeller(page, name: str) -> None:
    box = page.get_by_role("textbox", name="Labelling as")
    box.fill(name)
    box.press("Enter")
    page.get_by_text(f"{name}: 0 of").wait_for()


def test_label_run_chart_and_export_in_a_real_browser(server, browser):
    url, tmp, _ = server
    page = open_page(browser, url, height=2600)  # tall: the whole run section in one screenshot
    page.get_by_role("heading", name="Runs", exact=True).wait_for()
    shot(page, "01-open")

    # label two anchor pairs: one with the mouse, one with the keyboard shortcut
    page.get_by_role("link", name="Label").click()
    page.get_by_role("button", name="Import").click()
    page.get_by_text("0 of 92 labelled").wait_for()
    press(page, "Left is better")
    page.get_by_text("1 of 92 labelled").wait_for()
    page.get_by_role("heading", name="Label", exact=True).click()  # focus the page, not a text box
    page.keyboard.press("3")
    page.get_by_text("2 of 92 labelled").wait_for()
    shot(page, "02-labelled")

    # start a short run of the sample and watch the charts appear
    page.get_by_role("link", name="Runs").click()
    page.get_by_role("button", name="Start run").wait_for()
    assert page.locator(".js-plotly-plot").count() == 0  # no run yet, no chart
    fill_number(page, "Max training prompts (0 = all)", 8)
    fill_number(page, "Iterations", 1)
    box = page.get_by_role("textbox", name="Output folder")
    box.fill(str(tmp / "runs"))
    box.press("Enter")
    page.get_by_text("at most 48 judge calls").wait_for()  # the estimate follows the form: 8 prompts x C(4, 2)
    press(page, "Start run")
    page.locator('[data-testid="stProgress"]').first.wait_for()  # live progress while it runs
    shot(page, "03-running")
    page.get_by_text(re.compile(r"status (completed|stopped)")).wait_for(timeout=300_000)
    sync_api.expect(page.locator(".js-plotly-plot")).to_have_count(4)  # settled: the four run charts, once
    assert page.locator(".js-plotly-plot").first.get_by_text("baseline").count() >= 1  # the gate's decisions
    shot(page, "04-run-done")

    # approve and export
    page.get_by_role("link", name="Export").click()
    page.get_by_text("kept pairs selected").wait_for()
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved").first.wait_for()
    page.get_by_role("button", name="Write JSONL + Parquet").click()
    page.get_by_text("Wrote").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSONL").click()
    target = ARTIFACTS / "browser-export.jsonl"
    download.value.save_as(target)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows and {"prompt", "chosen", "rejected", "run_id", "approved_by"} <= set(rows[0])
    shot(page, "05-exported")
    page.context.close()


def test_two_sessions_labelling_at_once_lose_no_label(server, browser):
    url, tmp, proc = server
    pages = [open_page(browser, url, "label"), open_page(browser, url, "label")]
    for k, page in enumerate(pages):
        page.get_by_role("heading", name="Label", exact=True).wait_for()
        if page.get_by_role("button", name="Import").is_visible():
            page.get_by_role("button", name="Import").click()
        set_labeller(page, f"ann-{k}")
    rounds = 4
    for i in range(1, rounds + 1):
        press(pages[0], "Left is better")
        press(pages[1], "Right is better")  # without waiting for the first session's rerun
        for k, page in enumerate(pages):
            page.get_by_text(f"ann-{k}: {i} of 92 labelled").wait_for()
    for k, page in enumerate(pages):
        shot(page, f"06-session-{k}")
        page.context.close()

    proc.terminate()  # DuckDB lets one process hold the file: stop the server, then read what it wrote
    proc.wait(30)
    from store import Store

    with Store(tmp / "wb.duckdb") as store:
        (anchor_set,) = store.anchors.list_sets()
        labels = store.labels.latest(anchor_set["anchor_set_id"], kinds=("human",))
        by = {name: [r["label"] for r in labels if r["annotator"] == name] for name in ("ann-0", "ann-1")}
        assert len(by["ann-0"]) == rounds and len(by["ann-1"]) == rounds
        history = [r for r in labels if r["annotator"] in by]
        assert all(r["shown_left"] in ("a", "b") for r in history)


@pytest.mark.parametrize("first", ["runs", "rubrics", "label", "calibration", "browse", "export"])
def test_deep_links_work_from_the_first_request_of_a_fresh_server(browser, tmp_path, first):
    """A fresh server whose very first request is a deep link (Streamlit then runs the page file alone, in its
    pages-folder mode) shows that page through the router; so do later sessions' links, /runs included, and "/"
    forwards to the first page. No "Page not found" anywhere."""
    with streamlit_server(tmp_path, f"browser-deep-links-{first}.log") as (url, _):
        for path, title in ((first, first.capitalize()), ("runs", "Runs"), ("rubrics", "Rubrics"),
                            ("label", "Label"), ("calibration", "Calibration"), ("browse", "Browse"),
                            ("export", "Export"), ("", "Runs")):
            page = open_page(browser, url, path)
            page.get_by_role("heading", name=title, exact=True).wait_for()
            page.wait_for_timeout(500)  # a "Page not found" dialog would arrive with the page's first render
            assert page.get_by_text("Page not found").count() == 0, path
            assert page.url.rstrip("/").endswith(f"/{path or 'runs'}"), (path, page.url)
            sync_api.expect(page.get_by_role("link", name="Calibration")).to_have_count(1)  # the router's sidebar
            page.context.close()
