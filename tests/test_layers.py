"""The floor plan holds: no import loops, arrows only downwards, the engine apart from its faces.

Layers, lowest first: ``store`` (storage, and the owner of content hashing and secret redaction), ``rlaif.core``,
the domain (config, data, policy, verifiers, judges, anchors, pairs, training, evaluation, gates, manifests), the loop
(``rlaif.loop``: project assembly, stages, records, pipeline), and the faces (``rlaif.cli``, ``rlaif.workbench``,
``app.py``, ``pages/``). Every import counts, function-level ones included, so a loop cannot hide in a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The only function-level imports of project modules: each defers torch/TRL/transformers to the moment a model runs.
DEFERRED = {("rlaif.best_of_n", "rlaif.reward_model"), ("rlaif.cli.best_of_n", "rlaif.reward_model"),
            ("rlaif.cli.reward_model", "rlaif.reward_model"), ("rlaif.loop.stages", "rlaif.training"),
            ("rlaif.cli.judge", "rlaif.reward_model")}
STREAMLIT_USERS = ("app", "pages.", "rlaif.workbench.page")


def module_files() -> dict[str, Path]:
    files = [*ROOT.glob("rlaif/**/*.py"), *ROOT.glob("store/**/*.py"), ROOT / "app.py", *ROOT.glob("pages/*.py")]
    mods = {}
    for path in files:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = module_files()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, bool]]:
    """(imported module or package, imported inside a function) for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            names = subs + ([base] if len(subs) < len(node.names) else [])
        else:
            continue
        out.extend((name, id(node) in in_function) for name in names)
    return out


def project_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module in MODULES:
        for name, _ in imports(module):
            target = _resolve(name)
            if target and target != module:
                edges.setdefault(module, set()).add(target)
    return edges


def layer(module: str) -> int:
    if module.startswith("store"):
        return 0
    if module.startswith("rlaif.core"):
        return 1
    if module.startswith(("rlaif.loop", "rlaif.pipeline")):
        return 3
    if module.startswith(("rlaif.cli", "rlaif.workbench", "pages")) or module == "app":
        return 4
    return 2  # the domain: everything else in rlaif/


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    return found


def test_the_analysis_sees_the_whole_tree_and_finds_a_planted_loop():
    assert {"rlaif.loop.pipeline", "store.facade", "app", "pages.runs", "rlaif.core.fields"} <= set(MODULES)
    assert "rlaif.loop.stages" in project_edges()["rlaif.loop.pipeline"]
    planted = {**project_edges(), "rlaif.core.fields": {"rlaif.loop.pipeline"}}
    assert cycles(planted)  # the check would catch one


def test_no_import_loops():
    assert cycles(project_edges()) == []


def test_arrows_point_down_the_layers():
    upward = sorted((a, b) for a, targets in project_edges().items() for b in targets if layer(b) > layer(a))
    assert upward == []


def test_the_faces_do_not_use_each_other_and_pages_do_not_import_app():
    edges = project_edges()
    for module, targets in edges.items():
        if module.startswith("rlaif.cli"):
            assert not any(t.startswith("rlaif.workbench") for t in targets), module
        if module.startswith("rlaif.workbench"):
            assert not any(t.startswith("rlaif.cli") for t in targets), module
        if module.startswith("pages."):
            assert "app" not in targets, module


@pytest.mark.parametrize("library", ["streamlit", "plotly"])
def test_only_the_workbench_faces_import_ui_libraries(library):
    users = sorted(m for m in MODULES for name, _ in imports(m) if name.split(".")[0] == library)
    allowed = STREAMLIT_USERS if library == "streamlit" else (*STREAMLIT_USERS, "rlaif.workbench.charts")
    assert users and all(m.startswith(allowed) for m in users), users


def test_pages_neither_train_nor_write_sql():
    for module in (m for m in MODULES if m.startswith("pages.")):
        roots = {name.split(".")[0] for name, _ in imports(module)}
        assert not roots & {"trl", "torch", "transformers", "duckdb"}, module
        assert "execute(" not in MODULES[module].read_text(encoding="utf-8"), module


def test_function_level_imports_only_defer_heavy_libraries():
    lazy = {(m, _resolve(name)) for m in MODULES for name, inside in imports(m) if inside and _resolve(name)}
    assert lazy == DEFERRED
    for _, target in DEFERRED:  # each deferred module really pulls in torch at import time
        roots = {name.split(".")[0] for name, inside in imports(target) if not inside}
        assert roots & {"torch", "trl", "transformers"}, target
