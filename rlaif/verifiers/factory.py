"""Open a verifier by kind, as the config names it; the context manager owns whatever the verifier holds open.

Why a context manager for all of them: the SQL verifier holds a sandbox (a private DuckDB copy in a temp dir) and the
regex verifier a worker process; the loop opens the verifier once per run and must release it even when the run
fails. Options are checked here (unknown names, types, ranges) and paths resolve against ``base_dir``, the config
file's folder.

    with open_verifier("python_tests", {"timeout_s": 5}, base_dir=cfg.base_dir) as verifier:
        verifier.verify(candidate_text, reference).criteria()
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from rlaif.verifiers import KINDS, VerifierOptionError, check_number, options_from_dict
from rlaif.verifiers.json_schema import JsonSchemaOptions, JsonSchemaVerifier
from rlaif.verifiers.python_tests import PythonTestsOptions, PythonTestsVerifier
from rlaif.verifiers.regex import RegexOptions, RegexVerifier


@dataclass
class SqlOptions:
    warehouse: str | None = field(default=None, metadata={
        "help": "SQL file that defines the sandbox warehouse, relative to the config file's folder."})
    allowed_relations: list[str] = field(default_factory=list, metadata={
        "help": "Glob patterns of the relations candidate SQL may read (e.g. v_revenue_*)."})
    timeout_s: float = field(default=2.0, metadata={"help": "Per-query time limit in the sandbox."})
    max_rows: int = field(default=10_000, metadata={"help": "Results with more rows fail (too_many_rows)."})
    memory_limit: str | None = field(default="1GB", metadata={"help": "DuckDB memory_limit for queries."})

    def __post_init__(self):
        if not isinstance(self.warehouse, str) or not self.warehouse:
            raise VerifierOptionError("warehouse", "is required for the sql verifier (a .sql file)")
        if not isinstance(self.allowed_relations, list) or not self.allowed_relations \
                or not all(isinstance(p, str) and p for p in self.allowed_relations):
            raise VerifierOptionError("allowed_relations", "must list at least one glob pattern")
        check_number("timeout_s", self.timeout_s)
        check_number("max_rows", self.max_rows, -1, integer=True)


OPTIONS: dict[str, type] = {"sql": SqlOptions, "json_schema": JsonSchemaOptions, "regex": RegexOptions,
                            "python_tests": PythonTestsOptions}
assert set(OPTIONS) == set(KINDS)


def options_class(kind: str) -> type:
    try:
        return OPTIONS[kind]
    except KeyError:
        raise VerifierOptionError("", f"unknown verifier kind {kind!r}; one of {', '.join(KINDS)}") from None


@contextmanager
def open_verifier(kind: str, options: Mapping[str, Any] | None = None,
                  base_dir: Path | str = ".") -> Iterator[Any]:
    """Yield a verifier with ``verify(candidate_text, reference)``; raises VerifierOptionError on bad options."""
    opts = options_from_dict(options_class(kind), options)
    base = Path(base_dir)
    if kind == "sql":
        from rlaif.sql_sandbox import SqlSandbox
        from rlaif.sql_verifier import SqlVerifier

        warehouse = Path(opts.warehouse).expanduser()
        warehouse = warehouse if warehouse.is_absolute() else base / warehouse
        if not warehouse.is_file():
            raise VerifierOptionError("warehouse", f"file not found: {warehouse}")
        with SqlSandbox(warehouse, allowed_relations=list(opts.allowed_relations), timeout_s=opts.timeout_s,
                        max_rows=opts.max_rows, memory_limit=opts.memory_limit) as sandbox:
            yield SqlVerifier(sandbox)
    elif kind == "json_schema":
        yield JsonSchemaVerifier(opts, base_dir=base)
    elif kind == "regex":
        with RegexVerifier(opts) as verifier:
            yield verifier
    else:
        if opts.tmp_root is not None and not Path(opts.tmp_root).is_absolute():
            opts.tmp_root = str(base / opts.tmp_root)
        yield PythonTestsVerifier(opts)
