"""``python -m biometry``: see ``biometry.cli``."""

import sys

from biometry.cli import main

sys.exit(main())
