"""The Runs page in a real browser (Debian's headless Chromium via Playwright, ``streamlit run app.py``, 1440x900):
a typo in the form is said beside its field while the page keeps working, the form keeps its values across pages,
two runs are overlaid on one chart, and a store path that does not exist is asked about before it is created.

The server's store is seeded with two finished runs before it starts (DuckDB lets one process hold the file).
Screenshots go to ``test-artifacts/browser-runs-*.png``; page-to-usable times are printed (``-s`` shows them).
"""

from __future__ import annotations

import pytest

from store import Store
from tests.browser_support import (  # noqa: F401
    browser,
    fill_number,
    open_page,
    press,
    pytestmark,
    shot,
    streamlit_server,
    sync_api,
    usable_after,
)
from tests.test_app_runs import seed_compared_run

expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-runs")
    with Store(tmp / "wb.duckdb") as store:
        seed_compared_run(store, "run-aaaa1111", candidates=2, values=[0.25, 0.45], started_by="ana")
        seed_compared_run(store, "run-bbbb2222", candidates=4, values=[0.25, 0.35, 0.55])
    with streamlit_server(tmp, "browser-runs-server.log") as (url, proc):
        yield url, tmp


def runs_page(browser, url):
    page = open_page(browser, url, "runs")
    page.get_by_role("button", name="Start run").wait_for()
    return page


def type_into(page, label: str, value: str) -> None:
    box = page.get_by_role("textbox", name=label)
    box.fill(value)
    box.press("Enter")


def test_a_bad_path_is_said_inline_and_the_page_keeps_working(server, browser):
    url, _ = server
    page = runs_page(browser, url)
    start = page.get_by_role("button", name="Start run")
    expect(start).to_be_enabled()
    original = page.get_by_role("textbox", name="Training prompts").input_value()
    type_into(page, "Training prompts", "trian.jsonl")
    page.get_by_test_id("stAlertContentError").get_by_text("trian.jsonl: file not found").wait_for()
    expect(start).to_have_count(1)
    expect(start).to_be_disabled()
    page.get_by_text("Start is disabled.").wait_for()
    for heading in ("Jobs", "All runs", "Run details"):  # the rest of the page is still there
        expect(page.get_by_role("heading", name=heading, exact=True)).to_have_count(1)
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "runs-01-bad-path")
    type_into(page, "Training prompts", original)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    expect(start).to_have_count(1)
    expect(start).to_be_enabled()
    shot(page, "runs-02-fixed")
    page.context.close()


def test_form_values_survive_a_visit_to_another_page(server, browser):
    url, _ = server
    page = runs_page(browser, url)
    estimate = page.get_by_text("Cost estimate: at most")
    before = estimate.inner_text()
    fill_number(page, "Iterations", 2)
    expect(estimate).not_to_have_text(before)  # the server has the new value (the estimate follows it)
    type_into(page, "Held-out prompts", "eval.jsonl.bak")
    page.get_by_test_id("stAlertContentError").get_by_text("eval.jsonl.bak: file not found").wait_for()
    page.get_by_role("link", name="Label").click()
    page.get_by_role("heading", name="Label", exact=True).wait_for()
    seconds = usable_after(page, lambda: page.get_by_role("link", name="Runs").click(),
                           page.get_by_role("button", name="Start run"))
    print(f"runs page usable after {seconds:.2f} s (navigated from Label)")
    expect(page.get_by_role("spinbutton", name="Iterations")).to_have_value("2")
    expect(page.get_by_role("textbox", name="Held-out prompts")).to_have_value("eval.jsonl.bak")
    page.get_by_test_id("stAlertContentError").get_by_text("eval.jsonl.bak: file not found").wait_for()
    expect(page.get_by_role("button", name="Start run")).to_be_disabled()  # a kept typo still blocks Start
    shot(page, "runs-03-kept-after-navigation")
    press(page, "Reset to the config")
    expect(page.get_by_role("spinbutton", name="Iterations")).to_have_value("3")
    expect(page.get_by_role("textbox", name="Held-out prompts")).to_have_value("eval.jsonl")
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    page.context.close()


def test_two_runs_overlaid_on_one_chart(server, browser):
    url, _ = server
    page = open_page(browser, url, "runs", height=2400)
    page.get_by_role("heading", name="Runs", exact=True).wait_for()
    picker = page.get_by_role("combobox", name="Compare runs (two or more: overlaid curves and config diff)")
    for name in ("run-aaaa1111 · cmp", "run-bbbb2222 · cmp"):
        picker.click()
        page.get_by_role("option", name=name).click()
    overlay = page.locator(".js-plotly-plot").filter(has_text="Runs compared")
    expect(overlay).to_have_count(1)
    names = overlay.evaluate("el => el.data.map(t => t.name)")
    assert names == ["run-aaaa1111 · cmp", "run-bbbb2222 · cmp"]
    page.get_by_text("Config fields that differ").wait_for()
    page.locator("h1").first.click()  # close the picker's dropdown before the screenshot
    expect(page.get_by_role("option")).to_have_count(0)
    shot(page, "runs-04-overlaid")
    page.context.close()


def test_a_typed_store_path_that_does_not_exist_asks_before_creating(server, browser):
    url, tmp = server
    page = runs_page(browser, url)
    new = tmp / "typo-store.duckdb"
    type_into(page, "Store", str(new))
    create = page.get_by_role("button", name=f"Create new store at {new}")
    create.wait_for()
    page.get_by_text(f"No store at {new} yet").wait_for()
    assert not new.exists()
    expect(page.get_by_role("heading", name="Run details")).to_have_count(1)  # still on the seeded store
    shot(page, "runs-05-store-question")
    create.click()
    page.get_by_text("No runs yet.").wait_for()  # the new, empty store
    assert new.exists()
    shot(page, "runs-06-new-store")
    page.context.close()
