"""``python -m rlaif.cli ...`` runs the ``rlaif`` command."""

import sys

from rlaif.cli import main

sys.exit(main())
