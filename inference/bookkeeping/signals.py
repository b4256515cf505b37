"""SIGTERM and SIGINT stop a run cleanly: the current batch is finished, what is done is written.

``docker stop`` and platform time limits send SIGTERM (then SIGKILL after a grace
period); Ctrl-C sends SIGINT. The first signal only sets a flag (``stop_requested``)
that the pipeline reads between batches; the layout then writes its outputs so far and
raises ``RunInterrupted`` (exit code 4, ``--resume`` finishes the run). A second signal
stops at once (``KeyboardInterrupt``); the journal still holds every row flushed so far.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

_received: list[int] = []


def stop_requested() -> bool:
    return bool(_received)


def received_name() -> str:
    return signal.Signals(_received[0]).name if _received else ""


def _handler(signum: int, _frame) -> None:
    if _received:
        raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
    _received.append(signum)
    log.warning("%s received: finishing the current batch, then writing what is done "
                "(send it again to stop at once)", signal.Signals(signum).name)


@contextmanager
def graceful_stop() -> Iterator[None]:
    """Within: SIGTERM/SIGINT request a clean stop (main thread only; elsewhere nothing changes)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()


def interrupted_message(rows: int, done: int, unwritten: int = 0) -> str:
    """The one line a stopped run ends with: what is done, and how to finish (``unwritten``: output files
    that could not be written, e.g. on a full disk)."""
    written = (f"done, but {unwritten} output file(s) could not be written (see above)" if unwritten
               else "done and written (the JSON files list them)")
    return (f"stopped by {received_name() or 'a signal'} after the current batch: {done} of {rows} rows are "
            f"{written}; run the same command with --resume to finish the other {rows - done}")
