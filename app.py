"""The RLAIF Workbench: the router and the shared sidebar; each page in ``pages/`` is a thin view over ``rlaif/``,
getting its context from ``rlaif.workbench.page`` (pages never import this module).

Start it with ``rlaif workbench`` (127.0.0.1:8501), or ``streamlit run app.py`` (``.streamlit/config.toml`` binds
127.0.0.1). Served to a team, users come from ``[auth]`` in ``.streamlit/secrets.toml`` or ``RLAIF_USERS``; an
annotator then sees and may use only the Label page. A server on a non-loopback address without users stops at its
first script run with the reason on stderr (exit code 2): serving an error page forever would hide the mistake.

    RLAIF_STORE=rlaif.duckdb streamlit run app.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import streamlit as st
from streamlit import runtime

from rlaif.access import AuthConfigError, ExposureError, User, check_exposure, load_users, sign_in
from rlaif.workbench.page import PAGES, Workbench, default_labeller, keep_form_values, navigation_pages, page_guard
from rlaif.workbench.projects import discover_projects
from rlaif.workbench.stores import default_store_path, needs_confirmation, open_store


def _secrets() -> dict:
    try:
        return st.secrets.to_dict()
    except Exception:  # no secrets.toml: users may still come from the environment
        return {}


def _sign_in_page(users) -> None:
    st.title("RLAIF Workbench")
    with st.form("sign-in"):
        name = st.text_input("User")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user = sign_in(users, name, password)
        if user is None:
            st.session_state["failed_sign_ins"] = st.session_state.get("failed_sign_ins", 0) + 1
            time.sleep(min(2.0, 0.25 * st.session_state["failed_sign_ins"]))  # slow down guessing
            st.error("Unknown user or wrong password.")
        else:
            st.session_state["user"] = user
            st.rerun()


def _remembered(name: str, value: str) -> str:
    """Sidebar values live under plain session keys, not widget keys: Streamlit drops a widget's keyed state when
    the page changes, which would silently reset the store path to nothing."""
    st.session_state[f"wb.{name}"] = value
    return value


def _store_path(current: str, may_change: bool) -> str:
    """The store this session uses. A typed path with no database behind it is not opened until the user confirms
    "Create new store at …" (a typo would otherwise silently start an empty store); until then the session stays on
    the previous store and the text box keeps the typed path. The box is keyed so the buttons can set it; it is
    drawn on every page, and re-seeded from the plain keys should Streamlit ever have dropped its state."""
    state = st.session_state
    if not may_change:
        return _remembered("store", current)
    if "wb.store_box" not in state:
        state["wb.store_box"] = state.get("wb.store_pending") or current
    typed = st.text_input("Store", key="wb.store_box",
                          help="DuckDB file holding runs, pairs, rubrics and labels.").strip() or default_store_path()
    if typed == current or not needs_confirmation(typed):
        state.pop("wb.store_pending", None)
        return _remembered("store", typed)
    state["wb.store_pending"] = typed

    def create() -> None:
        state.pop("wb.store_pending", None)
        state["wb.store"] = typed

    def keep() -> None:
        state.pop("wb.store_pending", None)
        state["wb.store_box"] = current

    st.warning(f"No store at {typed} yet. Still using {current}.")
    st.button(f"Create new store at {typed}", type="primary", on_click=create, width="stretch",
              help="Makes an empty DuckDB store there.")
    st.button(f"Keep using {Path(current).name}", on_click=keep, width="stretch",
              help="Forget the typed path and stay on the current store.")
    return _remembered("store", current)


def _sidebar(user: User, signed_in: bool) -> Workbench:
    projects = discover_projects()
    state = st.session_state
    with st.sidebar:
        store_path = _store_path(state.get("wb.store") or default_store_path(), user.can("run"))
        names = list(projects)
        project = state.get("wb.project") if state.get("wb.project") in projects else names[0]
        project = _remembered("project", st.selectbox("Project", names, index=names.index(project),
                                                      help="The loop config pages start from."))
        if signed_in:
            labeller = user.name
            st.caption(f"Signed in as **{user.name}** ({user.role})")
            if st.button("Sign out"):
                state.pop("user", None)
                st.rerun()
        else:
            labeller = st.text_input("Labelling as", state.get("wb.labeller") or default_labeller(),
                                     help="Recorded on every label and approval.")
            labeller = _remembered("labeller", labeller.strip() or default_labeller())
        try:
            store = open_store(store_path)
        except Exception as err:  # an unwritable path, a database from a newer release, a file locked by a CLI run
            st.error(f"Cannot open the store {store_path}: {err}")
            st.stop()
    return Workbench(store_path, store, project, projects[project], user, labeller)


def run() -> None:
    st.set_page_config(page_title="RLAIF Workbench", page_icon=":material/balance:", layout="wide")
    try:
        users = load_users(_secrets())
        check_exposure(users, st.get_option("server.address"))
    except AuthConfigError as err:
        if isinstance(err, ExposureError) and runtime.exists():  # a real server, not AppTest: stop it, loudly,
            print(f"error: {err}", file=sys.stderr, flush=True)  # instead of serving this page forever
            os._exit(2)
        st.error(f"Sign-in is misconfigured: {err}")
        st.stop()
    user = st.session_state.get("user") if users else User(default_labeller(), "admin")
    if users and user is not None and (user.name not in users or users[user.name].role != user.role):
        user = None  # removed from the configuration (or given another role) since signing in
        st.session_state.pop("user", None)
    if user is None:
        st.session_state.pop("workbench", None)  # nothing of a signed-out session stays reachable
        st.navigation([st.Page(lambda: _sign_in_page(users), title="Sign in", url_path="sign-in")],
                      position="hidden").run()
        return
    st.session_state["workbench"] = _sidebar(user, signed_in=bool(users))
    keep_form_values()  # before the page runs: a page change must not lose a form's last edit
    page = st.navigation(navigation_pages(p for p in PAGES if user.can(p.action)))
    with page_guard(f"The {page.title} page"):
        page.run()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run()
