"""The page context: what every page in ``pages/`` gets with its first line, and the table of pages the router shows.

Why pages never import ``app``: ``app.py`` is the script Streamlit runs; importing it from a page would run the router
inside a page. Pages import this module, and ``app.py`` puts the ``Workbench`` into the session before any page runs.

Deep links on a fresh server: while a ``pages/`` folder exists and no session has called ``st.navigation`` yet,
Streamlit runs the first request's page file alone (its legacy pages-folder mode), so the router has not run. The
page context then calls ``st.navigation`` itself with the router's page files, which per Streamlit's documented
behaviour ends the pages-folder mode for the whole server, and reruns: the rerun goes through ``app.py`` to the same
URL. No private Streamlit API is touched.

    wb = page_context("label", "Your role may not label.")      # the first line of pages/label.py
"""

from __future__ import annotations

import contextlib
import getpass
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import streamlit as st

from rlaif.access import User
from rlaif.workbench.projects import REPO_ROOT
from store import Store


@dataclass(frozen=True)
class PageEntry:
    path: str  # relative to the repository root, where app.py lives
    title: str
    icon: str
    action: str  # what a user must be allowed to do to see the page


PAGES = (
    PageEntry("pages/runs.py", "Runs", ":material/play_circle:", "run"),
    PageEntry("pages/rubrics.py", "Rubrics", ":material/rule:", "edit_rubric"),
    PageEntry("pages/label.py", "Label", ":material/thumbs_up_down:", "label"),
    PageEntry("pages/calibration.py", "Calibration", ":material/balance:", "calibrate"),
    PageEntry("pages/browse.py", "Browse", ":material/table_view:", "browse"),
    PageEntry("pages/export.py", "Export", ":material/download:", "export"),
)


@dataclass
class Workbench:
    """What a page needs: the shared store, the chosen project, who is signed in and who is labelling."""

    store_path: str
    store: Store
    project: str
    project_path: Path
    user: User
    labeller: str

    def can(self, action: str) -> bool:
        return self.user.can(action)


def default_labeller() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def navigation_pages(entries) -> list:
    """The router's ``st.Page`` list for ``entries``: a hidden default page first, then one page per entry.

    Why a hidden default: Streamlit serves the default page at "/" and gives it no path of its own, so were a real
    page the default, a link to it (/runs) would be "Page not found". "/" lands on the hidden page instead, which
    forwards to the first page of the list (the first page this user may see).
    """
    pages = [st.Page(REPO_ROOT / e.path, title=e.title, icon=e.icon) for e in entries]
    home = st.Page(lambda: st.switch_page(pages[0]), title="Workbench", url_path="home", default=True,
                   visibility="hidden")
    return [home, *pages]


def page_context(action: str, denied: str) -> Workbench:
    """The first line of every page: this session's workbench, or a stop when the user may not ``action``."""
    wb = st.session_state.get("workbench")
    if wb is None:
        if not st.session_state.get("wb.rerouted"):  # a deep link on a fresh server: hand it to the router
            st.session_state["wb.rerouted"] = True
            st.navigation(navigation_pages(PAGES), position="hidden")
            st.rerun()
        st.error("Open the workbench through app.py (streamlit run app.py).")
        st.stop()
    if not wb.can(action):
        st.error(denied)
        st.stop()
    return wb


@contextlib.contextmanager
def page_guard(where: str = "This page") -> Iterator[None]:
    """Any unexpected error inside becomes one line (``st.error``) plus a "Details" expander with the traceback, so
    the sidebar and the rest of the app stay usable instead of a raw traceback replacing the page.

    Streamlit's own control flow passes through untouched: ``st.stop``, ``st.rerun`` and ``st.switch_page`` raise
    ``StopException`` / ``RerunException``, subclasses of ``ScriptControlException`` which derives from
    ``BaseException`` (streamlit 1.67, ``runtime/scriptrunner_utils/exceptions.py``), so ``except Exception`` never
    sees them; KeyboardInterrupt and SystemExit are BaseExceptions too.

        with page_guard():
            st.navigation(pages).run()
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - the point of the guard: one line instead of a traceback
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        st.error(f"{where} hit an unexpected error: {type(err).__name__}" + (f": {first}" if first else "")
                 + " (the rest of the workbench still works; the details below help a bug report).")
        with st.expander("Details"):
            st.code("".join(traceback.format_exception(err)), language="text")


# ---------------------------------------------------------------------------------------------------------------------
# form values that survive a page change

FORM_WIDGET = "form::"


def form_widget_key(form: str, name: str) -> str:
    """The widget key of field ``name`` of the form whose values live under the plain session key ``form``."""
    return f"{FORM_WIDGET}{form}::{name}"


def keep_form_values() -> None:
    """Copy every form widget's value (keys from ``form_widget_key``) into its form's plain session dict.

    Why the router calls this before each page: Streamlit drops a keyed widget's state at the end of a run that did
    not draw it (another page), and a page's own ``saved[name] = widget(...)`` runs only when its script gets that
    far: a click on another page while the form's rerun is still going would lose the last change. The router runs
    first in every run, while the widget states are still there."""
    state = st.session_state
    for key in list(state):
        if not (isinstance(key, str) and key.startswith(FORM_WIDGET)):
            continue
        form, _, name = key[len(FORM_WIDGET):].rpartition("::")
        values = state.get(form)
        if isinstance(values, dict) and name:
            values[name] = state[key]
