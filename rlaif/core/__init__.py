"""The engine's bottom layer: pieces every other module may use and that use nothing of the engine.

``fields`` builds and validates the option dataclasses (configs, judge options, verifier options). Content hashing
and secret redaction are owned by the store (``store.content_hash``, ``store.secrets_guard``): the store must hash
and refuse secrets without importing the engine, so the engine imports them from there, never the other way.
"""
