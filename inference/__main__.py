"""``python -m inference``: see ``inference.cli``."""

import signal
import sys

from inference.cli import finish_process, main

if __name__ == "__main__":
    code = main()
    # The run is over and its outputs written: a SIGTERM/SIGINT during the interpreter's
    # teardown must not turn its exit code into 143/130.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    finish_process(code)
    sys.exit(code)
