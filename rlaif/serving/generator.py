"""The server backend's generator: the loop's two generation operations (N candidates per prompt over the
temperature ladder; greedy answers for evaluation) answered by inference servers instead of ``model.generate``.

Why the prompt is rendered here and not by the server: the server must see exactly the text in-process sampling
feeds the model (``Rendering.prompt``: plain template, whitespace moved to the completion), so plain mode sends the
rendered string to ``/v1/completions``; chat mode sends the rendered messages to ``/v1/chat/completions`` and the
server applies the tokenizer's own chat template, as ``apply_chat_template`` does in process.

Seeds: one per candidate, from (base seed, iteration, sample index, prompt id), sent with the request and stored in
the candidate's row. vLLM honours a request's seed per request; transformers serve seeds torch globally when the
request arrives, so its candidates are reproducible only one request at a time (its default concurrency). With
continuous batching (``seeds_honoured=False``) the batch shares one random generator: no seed is sent (reseeding the
whole server on each arrival would not make anything reproducible) and candidates are stored without one.

    gen = ServerGenerator(client, rendering_policy, model=path, engine="transformers")
    samples = gen.sample_candidates(texts, ids, n=4, temperatures=[0.7, 1.0], seed=0, iteration=1, max_new_tokens=64)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from rlaif.policy import Policy, Rendering, Sample
from rlaif.serving.client import CompletionClient, Reply, Request

SEED_RULE = "sha256(base:iteration:sample_index:prompt_id)[:8] per candidate (server backend)"


def candidate_seed(base_seed: int, iteration: int, sample_index: int, prompt_id: str) -> int:
    """The seed of one candidate: it depends on nothing else, so a candidate is reproducible on its own."""
    digest = hashlib.sha256(f"{base_seed}:{iteration}:{sample_index}:{prompt_id}".encode()).hexdigest()
    return int(digest[:8], 16)


def transformers_generation_config(model_path: str, tokenizer) -> dict[str, Any]:
    """The checkpoint's own generation config (when its folder is readable here) with the tokenizer's stop tokens.

    Why it is sent at all: transformers serve samples only when the model's generation config says ``do_sample``
    (a request's temperature alone decodes greedily when it does not), and a request's ``generation_config``
    replaces the model's whole, stop tokens included.
    """
    base: dict[str, Any] = {}
    path = Path(model_path) / "generation_config.json"
    if path.is_file():
        base = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items()
                if not k.startswith("_") and k != "transformers_version"}
    base.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return base


class ServerGenerator:
    """Generation on inference servers, with the same results shape as ``rlaif.policy``'s functions."""

    def __init__(self, client: CompletionClient, rendering_policy: Policy, *, model: str, engine: str,
                 generation_config: dict[str, Any] | None = None, seeds_honoured: bool = True):
        self.client = client  # a CompletionClient, or a RoutedClient (continuous batching, a server per setting)
        self.seeds_honoured = seeds_honoured
        self.policy = rendering_policy  # a Policy without weights: its tokenizer renders prompts and counts tokens
        self.model = model
        self.engine = engine
        self.generation_config = generation_config or {}

    @property
    def rendering(self) -> Rendering:
        return self.policy.rendering

    # ---- requests

    def _request(self, prompt: str, *, temperature: float, seed: int | None, max_tokens: int,
                 top_p: float) -> Request:
        extra: dict[str, Any] = {}
        if self.engine == "transformers":
            gen = {**self.generation_config, "do_sample": temperature > 0, "max_new_tokens": max_tokens}
            if temperature > 0:
                gen.update(temperature=float(temperature), top_p=float(top_p), top_k=0)  # as in process: no top-k
            extra["generation_config"] = json.dumps(gen)
        elif self.engine == "vllm":
            extra["top_k"] = -1  # no top-k cut, as in process
        if self.rendering.chat:
            return Request(self.model, temperature, max_tokens, messages=self.rendering.messages(prompt), seed=seed,
                           top_p=top_p, extra_body=extra)
        return Request(self.model, temperature, max_tokens, prompt=self.policy.render(prompt), seed=seed,
                       top_p=top_p, extra_body=extra)

    def _tokens(self, reply: Reply) -> int:
        """New tokens as the in-process path counts them: without the stop token servers count in their usage."""
        if reply.completion_tokens is None:
            return len(self.policy.tokenizer(reply.text, add_special_tokens=False)["input_ids"])
        return max(0, reply.completion_tokens - (1 if reply.finish_reason == "stop" else 0))

    # ---- the two operations the loop needs

    def sample_candidates(self, prompts: Sequence[str], prompt_ids: Sequence[str], *, n: int,
                          temperatures: Sequence[float], seed: int, iteration: int, max_new_tokens: int,
                          top_p: float = 1.0, on_batch: Callable[[int, int], None] | None = None,
                          should_stop: Callable[[], bool] | None = None) -> list[list[Sample]]:
        """N samples per prompt; sample i uses temperatures[i % len] and its own seed (``candidate_seed``)."""
        slots = [(k, i) for i in range(n) for k in range(len(prompts))]
        temps = [float(temperatures[i % len(temperatures)]) for _, i in slots]
        seeds = [candidate_seed(seed, iteration, i, str(prompt_ids[k])) if self.seeds_honoured else None
                 for k, i in slots]
        requests = [self._request(prompts[k], temperature=t, seed=s, max_tokens=max_new_tokens, top_p=top_p)
                    for (k, _), t, s in zip(slots, temps, seeds)]
        replies = self.client.run(requests, should_stop=should_stop, on_done=on_batch)
        result: list[list[Sample]] = [[] for _ in prompts]
        for (k, i), t, s, reply in zip(slots, temps, seeds, replies):
            result[k].append(Sample(k, i, reply.text.strip(), t, s, self._tokens(reply)))
        return result

    def greedy(self, prompts: Sequence[str], *, max_new_tokens: int,
               on_batch: Callable[[int, int], None] | None = None) -> list[tuple[str, int]]:
        """Deterministic decoding (temperature 0) for evaluation, in prompt order."""
        requests = [self._request(p, temperature=0.0, seed=None, max_tokens=max_new_tokens, top_p=1.0)
                    for p in prompts]
        return [(r.text.strip(), self._tokens(r)) for r in self.client.run(requests, on_done=on_batch)]
