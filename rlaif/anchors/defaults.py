"""The calibration defaults in one dependency-free module, so the CLI's parser can show them without importing the
engine (numpy, scikit-learn, DuckDB) on every ``rlaif`` command."""

DEFAULT_THRESHOLD = 0.72  # seed 002: "do not train on RLAIF batches where judge agreement falls below 0.72 kappa"
DEFAULT_MIN_ITEMS = 30  # fewer labelled anchors give a kappa CI too wide to decide on
DEFAULT_HOLDOUT_FRACTION = 0.2  # seed 002: "reserve 10-20% of anchors as a never-optimize test set"
ANNOTATOR_MODES = ("human", "oracle", "any")
GATE_ON = ("lower_bound", "point")  # which number must clear the threshold: the CI lower bound, or kappa itself
DEFAULT_MIN_ITEMS_PER_SLICE = 10
