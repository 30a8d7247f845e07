"""What every browser test shares: Debian's chromium through Playwright, a ``streamlit run app.py`` on a free loopback
port, pages opened at 1440x900 (the size the workbench is designed for), screenshots into ``test-artifacts/``.

A test module does ``from tests.browser_support import *`` (fixtures ``browser``; helpers ``streamlit_server``,
``open_page``, ``shot``, ``press``, ``fill_number``, ``usable_after``); the module-level ``pytestmark`` and
``RLAIF_REQUIRE_BROWSER`` check come with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# CI (.ci/run) installs chromium and sets RLAIF_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping
if os.environ.get("RLAIF_REQUIRE_BROWSER") == "1" and not CHROMIUM.exists():
    raise RuntimeError("RLAIF_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing (apt-get install -y chromium)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                      "(apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package (dev extra)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(tmp: Path, log_name: str, extra: dict[str, str] | None = None):
    """``streamlit run app.py`` on a free loopback port with a store in ``tmp`` (``extra`` adds or overrides variables,
    e.g. ``RLAIF_PROJECTS``); yields (url, process)."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")
    env = {**os.environ, "RLAIF_STORE": str(tmp / "wb.duckdb"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    for name in ("RLAIF_USERS", "RLAIF_PROJECTS"):  # the sample project, local single-user mode
        env.pop(name, None)
    env.update(extra or {})
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
                             "--server.runOnSave", "false"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "streamlit did not start (see the log)"
        time.sleep(0.3)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


WIDTH, HEIGHT = 1440, 900


def open_page(browser, url: str, path: str = "", height: int = HEIGHT, width: int = WIDTH):
    """A new browser context at ``width`` x ``height`` (1440x900 unless a test needs a taller view: Streamlit
    scrolls inside its own container, so a screenshot shows only what the viewport holds)."""
    page = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True).new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{url}/{path}")
    return page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def press(page, name: str) -> None:
    """Click a button once the rerun that draws it has settled (mid-rerun the old pair's buttons are still shown)."""
    button = page.get_by_role("button", name=name)
    sync_api.expect(button).to_have_count(1)
    button.click()


def fill_number(page, label: str, value) -> None:
    box = page.get_by_role("spinbutton", name=label)
    box.fill(str(value))
    box.press("Enter")




def usable_after(page, go, ready) -> float:
    """Seconds from ``go()`` (a click or a goto) until ``ready`` (a locator) is visible: page-to-usable time as a
    user feels it, measured while a test navigates (figures, not assertions, unless a test asks for a bound)."""
    started = time.perf_counter()
    go()
    ready.wait_for(state="visible")
    return time.perf_counter() - started
