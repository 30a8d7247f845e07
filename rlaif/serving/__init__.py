"""Generation on inference servers (``sampling.backend: server``): a server the loop starts itself, or external ones.

    backend = ServerBackend(cfg.sampling.server, base_path, rendering_policy, log_dir)
    candidates = backend.generator(checkpoint).sample_candidates(texts, ids, n=4, temperatures=[0.7], seed=0, ...)

``sampling.server.continuous_batching: true`` (managed transformers serve): one continuous-batching server per
sampling setting (``rlaif.serving.per_setting``), many requests at once; fast, but seeds are not honoured per request.
"""

from rlaif.serving.backend import ServerBackend, detect_engine
from rlaif.serving.client import CompletionClient, Reply, Request
from rlaif.serving.generator import SEED_RULE, ServerGenerator, candidate_seed
from rlaif.serving.managed import ManagedServer, ServerError, stop_all_servers
from rlaif.serving.options import ServerOptions
from rlaif.serving.per_setting import RoutedClient, SettingServers

__all__ = ["SEED_RULE", "CompletionClient", "ManagedServer", "Reply", "Request", "ServerBackend", "ServerError",
           "ServerGenerator", "ServerOptions", "RoutedClient", "SettingServers", "candidate_seed", "detect_engine", "stop_all_servers"]
