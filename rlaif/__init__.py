"""RLAIF Workbench engine: sampling, verification, judging, pair building, DPO training, evaluation and gates.

The engine knows nothing of the UI; the CLI and the Streamlit pages both call it.
"""

__version__ = "0.1.0"
