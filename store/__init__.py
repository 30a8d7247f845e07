"""DuckDB storage for the RLAIF Workbench: migrations, one repository per entity, one ``Store`` facade.

    from store import Store
    store = Store("runs/workbench.duckdb")
"""

from store.content_hash import canonical_json, content_hash
from store.db import StoreUnavailableError
from store.facade import Store
from store.migrate import MigrationError, SchemaTooNewError
from store.pairs import PairFilter

__all__ = ["Store", "SchemaTooNewError", "MigrationError", "PairFilter", "StoreUnavailableError", "canonical_json",
           "content_hash"]
