"""ONNX Runtime engine: a task's graph path run on a batch, outputs returned by role.

Device choice (``inference.engines.providers``): ``cpu``; ``cuda`` (verified with the first
session's providers: when CUDA does not really work, ``EngineError``); ``auto``: CUDA
when it really works, else the CPU, the reason logged. Graphs run through the one
``GraphRunner`` (the exporter's parity check runs the same code). No torch import here
(see ``torch_engine`` for the fallback).

Graphs are checked when a task first needs them: each file's sha256 against the
manifest (unless ``verify_hashes`` is off; about 22 ms for the default model), then its
session is made and its outputs compared with the manifest's (``graph_check``: names and
class counts, hashes or not). A graph that fails a check fails every task whose path holds
it (``GraphError``, remembered, so later batches fail at once) and no other: a damaged
head costs its own task only. ``GraphError.shared`` says whether the graph serves more
than one task (encoder, FPN), ``every_task`` whether every task needs it;
``fallback.FallbackEngine`` decides what to do with it. ``start`` checks, before any image,
what can fail for every task: the device (the first session) and the graphs every task needs.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from contract.manifest import Manifest, ModelFolder, TaskEntry, sha256_of
from inference.errors import DeviceUnavailable, EngineError, GraphError
from inference.engines.feeds import extra_feeds
from inference.engines.graph_check import every_task_needs, graph_mismatch
from inference.engines.providers import CPU, CUDA, resolve_device
from inference.engines.runner import GraphRunner, default_threads

log = logging.getLogger(__name__)


def resolve_precision(requested: str, device: str, manifest: Manifest) -> str:
    """``auto``: fp16 on CUDA when the model has fp16 graphs, else fp32; explicit values must exist."""
    if requested == "auto":
        return "fp16" if device == "cuda" and "fp16" in manifest.graph_sets else "fp32"
    manifest.graph_set(requested)  # raises ManifestError naming the fix
    if device == "cpu" and requested == "fp16":
        log.warning("fp16 graphs on the CPU provider are slow; --precision fp32 or int8 suits a CPU better")
    return requested


class OnnxEngine:
    """Runs a task's graph path with ONNX Runtime; ``run`` returns the task's outputs by role."""

    def __init__(self, folder: ModelFolder, device: str = "auto", precision: str = "auto",
                 threads: int | None = None, verify_hashes: bool = True):
        self.folder = folder
        self.verify_hashes = verify_hashes
        self._graph_faults: dict[str, GraphError | None] = {}  # graph name -> its fault (None: usable)
        self._hash_seconds = 0.0
        self.threads = threads or default_threads()
        self.requested_precision, self.requested_device = precision, device
        #: cpu_reason: why the run is on the CPU although a GPU was allowed (the run summary shows it)
        self.device, self.cpu_reason = resolve_device(device)
        self._warm: set[tuple] = set()  # (graph path, batch shape) already run once on CUDA
        self.precision = resolve_precision(precision, self.device, folder.manifest)
        if self.device == "cuda" and CUDA not in folder.manifest.graph_set(self.precision).providers:
            log.info("the model's %s graphs are meant for the CPU provider (manifest); they run on the CPU",
                     self.precision)
            self.device = "cpu"
        self.runner = self._runner()
        self._verified = False
        self._every_task = every_task_needs(folder.manifest)

    def _runner(self) -> GraphRunner:
        graph_set = self.folder.manifest.graph_set(self.precision)
        return GraphRunner(self.folder.path, graph_set, self.device, self.threads)

    @property
    def provider(self) -> str:
        return CUDA if self.device == "cuda" else CPU

    @property
    def description(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} {self.provider} {self.precision} ({self.threads} CPU threads)"

    @property
    def load_seconds(self) -> float:
        """Seconds spent checking graph files and making sessions so far."""
        return self.runner.load_seconds + self._hash_seconds

    def _verify_provider(self, first_graph: str) -> None:
        """Once: the first session really runs on CUDA when CUDA was chosen; else CPU (or EngineError)."""
        self._verified = True
        if self.device == "cuda" and not self.runner.uses_cuda(first_graph):
            used = self.runner.session(first_graph).get_providers()
            reason = f"ONNX Runtime did not enable the CUDA provider (session providers: {', '.join(used)})"
            if self.requested_device == "cuda":
                raise DeviceUnavailable(f"--device cuda, but {reason} (a CUDA or cuDNN library failed to load: "
                                        "python scripts/check_cuda_libs.py names it)")
            log.warning("falling back to the CPU provider: %s", reason)
            self.device, self.cpu_reason = "cpu", reason
            self.precision = resolve_precision(self.requested_precision, "cpu", self.folder.manifest)
            self.runner = self._runner()
            self._graph_faults.clear()
        log.debug("inference engine: %s", self.description)

    def _check_graph(self, name: str) -> GraphError | None:
        """The graph's file against the manifest's sha256, then its session and outputs; the fault, if any."""
        graph = self.runner.graph_set.graphs[name]
        users = [t.task_id for t in self.folder.manifest.tasks if name in t.path]
        shared, every = len(users) > 1, name in self._every_task
        path = self.folder.path / graph.path
        if self.verify_hashes:
            started = time.perf_counter()
            try:
                digest = sha256_of(path)
                self._hash_seconds += time.perf_counter() - started
            except OSError as exc:
                return GraphError(name, f"cannot load graph {name!r} ({graph.path}): {exc.strerror or exc}; "
                                  "re-export the model", shared=shared, damaged=True, every_task=every)
            log.debug("sha256 of %s checked in %.1f ms", graph.path, 1000 * (time.perf_counter() - started))
            if digest != graph.sha256:
                return GraphError(name, f"cannot load graph {name!r} ({graph.path}): its sha256 differs from the "
                                  "manifest, the file was changed or damaged (re-export the model, or pass "
                                  "--no-verify-hashes to run it anyway)", shared=shared, damaged=True, every_task=every)
        try:
            session = self.runner.session(name)
        except EngineError as exc:
            return GraphError(name, str(exc), shared=shared, every_task=every)
        mismatch = graph_mismatch(self.folder.manifest, graph, session)
        if mismatch is not None:
            return GraphError(name, f"cannot use graph {name!r} ({graph.path}): {mismatch}; it is not the graph the "
                              "manifest describes (another model's or task's file?): re-export the model",
                              shared=shared, damaged=True, every_task=every)
        return None

    def _fault(self, name: str) -> GraphError | None:
        if name not in self._graph_faults:
            self._graph_faults[name] = self._check_graph(name)
        return self._graph_faults[name]

    def check_task(self, task: TaskEntry) -> None:
        """GraphError (naming the task and graph) when a graph on ``task``'s path is unusable."""
        for name in task.path:
            fault = self._fault(name)
            if fault is not None:
                raise GraphError(fault.graph, f"task {task.task_id}: {fault.reason}", shared=fault.shared,
                                 damaged=fault.damaged, every_task=fault.every_task)

    def start(self) -> None:
        """Before any image: the graphs every task needs are usable, and the device works (its first session).

        GraphError (``every_task``) or DeviceUnavailable otherwise."""
        names = self._every_task or [self.folder.manifest.tasks[0].path[0]]
        for _ in range(2):  # again after a switch to the CPU (a new runner, faults forgotten)
            for name in names:
                fault = self._fault(name)
                if fault is not None:
                    raise fault
            if self._verified:
                return
            self._verify_provider(names[0])

    def _warm_up(self, task: TaskEntry, batch: np.ndarray, extra: dict) -> None:
        """On CUDA, once per graph path and batch shape: a zero batch first, so that cuDNN's algorithm search
        and the first allocations happen before the first real batch (which then runs at steady speed)."""
        key = (tuple(task.path), batch.shape)
        if self.device != "cuda" or key in self._warm:
            return
        self._warm.add(key)
        started = time.perf_counter()
        self.runner.run(np.zeros_like(batch), task.path, wanted=task.outputs.values(), extra=extra)
        log.debug("warm-up of %s at %s in %.2f s", task.task_id, batch.shape, time.perf_counter() - started)

    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        """N x 3 x H x W float32 -> {role: N x ... array} for ``task``; EngineError on failure."""
        self.check_task(task)
        if not self._verified:
            self._verify_provider(task.path[0])
            self.check_task(task)
        try:
            inputs = [i for name in task.path for i in self.runner.graph_set.graphs[name].inputs]
            extra = extra_feeds(task, inputs, len(batch))
            self._warm_up(task, batch, extra)
            tensors = self.runner.run(batch, task.path, wanted=task.outputs.values(), extra=extra)
        except EngineError as exc:
            raise EngineError(f"task {task.task_id}: {exc}") from exc
        return {role: np.asarray(tensors[name], dtype=np.float32) for role, name in task.outputs.items()}
