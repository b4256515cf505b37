"""Is a graph the one the manifest describes? Checked when its ONNX Runtime session is made.

Whether or not the file's sha256 is checked (``--no-verify-hashes``), a session's outputs must be
the tensors the manifest lists for the graph, and the role tensor of each task it serves must
have the task's class (or point) count (``contract.kinds.KindSpec.role_shape``). Another task's
head put in a head's place, or a head exported for another class count, is then refused with
the reason, as a damaged file is, instead of failing later inside a batch.

``every_task_needs``: the graphs on every task's path (the encoder): when one of them cannot be
used, nothing can be predicted and the run stops at start (``OnnxEngine.start``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from contract.kinds import OUTPUT_ROLE, role_shape_problem
from contract.manifest import GraphFile, Manifest, sha256_of

log = logging.getLogger(__name__)


def every_task_needs(manifest: Manifest) -> list[str]:
    """The graphs every task's path holds, in path order (usually the encoder alone)."""
    paths = [task.path for task in manifest.tasks]
    if not paths:
        return []
    common = set(paths[0]).intersection(*paths[1:])
    return [name for name in paths[0] if name in common]


def graph_mismatch(manifest: Manifest, graph: GraphFile, session: Any) -> str | None:
    """Why ``session`` (of ``graph``'s file) is not the graph the manifest describes, or None."""
    given = {output.name: output.shape for output in session.get_outputs()}
    missing = [name for name in graph.outputs if name not in given]
    if missing:
        return (f"it gives the output(s) {', '.join(sorted(given)) or '(none)'}, the manifest lists "
                f"{', '.join(graph.outputs)}")
    for task in manifest.tasks:
        tensor = task.outputs.get(OUTPUT_ROLE[task.kind])
        shape = given.get(tensor) if tensor in graph.outputs else None
        if not shape:  # not this graph's tensor, or a shape the file does not state
            continue
        problem = role_shape_problem(task.kind, task.num_classes, list(shape)[1:])
        if problem is not None:
            return f"its output {tensor} has {problem} (task {task.task_id})"
    return None


class BackgroundSha256:
    """A file's sha256 computed in a background thread (hashlib releases the GIL on large blocks)."""

    def __init__(self, path: Path):
        self._value: str | OSError | None = None
        self._thread = threading.Thread(target=self._work, args=(path,), name="sha256", daemon=True)
        self._thread.start()

    def _work(self, path: Path) -> None:
        started = time.perf_counter()
        try:
            self._value = sha256_of(path)
        except OSError as exc:
            self._value = exc
        log.debug("sha256 of %s checked in %.1f ms", path.name, 1000 * (time.perf_counter() - started))

    def result(self) -> str | OSError:
        self._thread.join()
        return self._value if self._value is not None else OSError("the sha256 thread gave no result")


_EARLY: dict[Path, BackgroundSha256] = {}  # hashes started before the engine exists (start_hashes)


def start_hashes(folder: Path, manifest: Manifest) -> None:
    """Start hashing the graphs every task needs now, in threads (called as soon as the model folder is open).

    The rest of the start-up is mostly imports, which let a thread run between their steps, and leave the
    second core idle; a hash started later competes with ONNX Runtime, which holds the GIL while it makes
    a session and uses every core while it runs. ``OnnxEngine`` takes these hashes (``take_hash``)."""
    graphs = manifest.graph_set("fp32").graphs
    for name in every_task_needs(manifest):
        path = Path(folder) / graphs[name].path
        if path not in _EARLY:
            _EARLY[path] = BackgroundSha256(path)


def take_hash(path: Path) -> BackgroundSha256:
    """The hash of ``path`` started by ``start_hashes``, or one started now."""
    return _EARLY.pop(path, None) or BackgroundSha256(path)


class GraphHashes:
    """The sha256 of each graph file an engine loads: started once per file (``take_hash``: perhaps already
    running since ``start_hashes``), awaited only when asked (``finish``), then compared (``problem``)."""

    def __init__(self) -> None:
        self._done: dict[Path, str | OSError] = {}
        self._running: dict[Path, BackgroundSha256] = {}
        self.wait_seconds = 0.0  # time spent waiting for hashes (counted as load time)

    def start(self, path: Path) -> None:
        if path not in self._done and path not in self._running:
            self._running[path] = take_hash(path)

    def running(self, path: Path) -> bool:
        return path in self._running

    def finish(self, path: Path) -> None:
        hashing = self._running.pop(path, None)
        if hashing is not None:
            waited = time.perf_counter()
            self._done[path] = hashing.result()
            self.wait_seconds += time.perf_counter() - waited

    def problem(self, path: Path, expected: str) -> str | None:
        """Why the finished hash of ``path`` does not prove it is the manifest's file, or None."""
        digest = self._done.get(path)
        if digest is None or digest == expected:
            return None
        if isinstance(digest, OSError):
            return f"{digest.strerror or digest}; re-export the model"
        return ("its sha256 differs from the manifest, the file was changed or damaged (re-export the model, or "
                "pass --no-verify-hashes to run it anyway)")

