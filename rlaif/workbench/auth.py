"""``python -m rlaif.workbench.auth hash NAME ROLE``: make a user line for RLAIF_USERS or secrets.toml.

Users, roles and the exposure check live in ``rlaif.access`` (the CLI's launcher and the app both use them); this
module keeps the documented command where it was.
"""

import sys

from rlaif.access import main

if __name__ == "__main__":
    sys.exit(main())
