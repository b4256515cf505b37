"""Exceptions and exit codes of the runtime.

Exit codes of ``python -m inference``:

==== =====================================================================
0    every row was predicted
1    fatal error (no model, no CSV or nothing to do, missing input folder,
     unwritable or full output, another run holding the output folder, a
     ``--resume`` against other inputs, a ``--device``/``--precision`` that
     cannot work, a graph every task needs unusable): one message says what
     to fix; a run that fails at start leaves the output folder untouched
2    usage error (bad command-line arguments)
3    some rows (or output files) failed, each named on stderr with its reason;
     every other row was written, and the failed rows got a fallback
     prediction unless ``--strict``
4    stopped by SIGTERM/SIGINT (or a second one: at once): the rows finished
     are written; ``--resume`` with the same arguments finishes the run
==== =====================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_ROWS_FAILED = 3
EXIT_INTERRUPTED = 4


class InferenceError(Exception):
    """Base class of the runtime's own errors."""


class FatalError(InferenceError):
    """The run cannot go on; the message tells the user what to fix (exit code 1)."""


class RowError(InferenceError):
    """One input row cannot be predicted; the others go on (exit code 3)."""


class RunInterrupted(InferenceError):
    """SIGTERM/SIGINT stopped the run after its current batch; what was done is written (exit code 4)."""


class EngineError(InferenceError):
    """An inference engine cannot load or run the model's graphs."""


class GraphError(EngineError):
    """One graph of the model cannot be used (changed/damaged file, failed session): its tasks fail.

    ``shared``: the graph serves several tasks (encoder, FPN); ``every_task``: every task needs it
    (the encoder: nothing can be predicted without it); ``damaged``: its file differs from the
    manifest (so the PyTorch fallback, which reads the same files, cannot help either).
    """

    def __init__(self, graph: str, reason: str, shared: bool = False, damaged: bool = False,
                 every_task: bool = False):
        super().__init__(reason)
        self.graph, self.reason, self.shared, self.damaged = graph, reason, shared, damaged
        self.every_task = every_task


class DeviceUnavailable(EngineError):
    """``--device cuda`` on a machine where CUDA cannot work (no device, driver, library): the run stops.

    Not a reason to try PyTorch: it would need the same GPU.
    """


class OutputPathError(RowError):
    """An output path that would lie outside the output folder (or inside the input folder)."""


def describe(exc: BaseException) -> str:
    """One line for an unexpected fault: its type (MemoryError, cv2.error, ...) and first message line."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, MemoryError):
        return f"out of memory (MemoryError{': ' + text if text else ''})"
    name = f"{type(exc).__module__}.{type(exc).__name__}" if type(exc).__module__ not in ("builtins",) else type(exc).__name__
    return f"{name}: {text}" if text else name
