"""``python -m selection MEMBER... --select-on VAL_DIR --out DIR`` (the same as ``python export.py ... --select-on``)."""

import sys

from selection.cli import main

sys.exit(main())
