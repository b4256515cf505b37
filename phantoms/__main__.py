"""``python -m phantoms``: see ``phantoms.cli``."""

import sys

from phantoms.cli import main

sys.exit(main())
