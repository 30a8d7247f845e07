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

import getpass
from dataclasses import dataclass
from pathlib import Path

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
