"""ONNX Runtime engine: a task's graph path run on a batch, outputs returned by role.

Device choice (``inference.engines.providers``): ``cpu``; ``cuda`` (verified with the first
session's providers: when CUDA does not really work, ``EngineError``); ``auto``: CUDA
when it really works, else the CPU, the reason logged. Graphs run through the one
``GraphRunner`` (the exporter's parity check runs the same code). No torch import here
(see ``torch_engine`` for the fallback).

CPU variants (``inference.engines.cpu_variants``: ``--precision bf16``, or ``auto`` when the
manifest records a passed check) run the same graph files through ``OpenVinoRunner``; if it
fails, the run goes on with ONNX Runtime fp32 (one warning line).

Graphs are checked when a task first needs them: each file's sha256 against the
manifest (unless ``verify_hashes`` is off), computed in a thread while its session is
made, then its outputs are compared with the manifest's (``graph_check``: names and class
counts, hashes or not, ONNX Runtime sessions). A graph that fails a check fails every task
whose path holds it (``GraphError``, remembered, so later batches fail at once) and no other: a damaged
head costs its own task only. ``GraphError.shared`` says whether the graph serves more
than one task (encoder, FPN), ``every_task`` whether every task needs it;
``fallback.FallbackEngine`` decides what to do with it. ``start`` checks, before any image,
what can fail for every task: the device (the first session) and the graphs every task needs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from contract.manifest import ModelFolder, TaskEntry
from inference.errors import DeviceUnavailable, EngineError, GraphError
from inference.engines.cpu_variants import VARIANTS
from inference.engines.feeds import extra_feeds
from inference.engines.graph_check import GraphHashes, every_task_needs, graph_mismatch
from inference.engines.providers import CPU, CUDA, resolve_device, resolve_precision
from inference.engines.openvino_runner import OpenVinoRunner
from inference.engines.runner import GraphRunner, default_threads

log = logging.getLogger(__name__)


class OnnxEngine:
    """Runs a task's graph path with ONNX Runtime (or a CPU variant's runtime); ``run`` returns outputs by role.

    A CPU variant (``--precision bf16``, or chosen by ``auto``) that fails to compile or run leaves the
    run on ONNX Runtime fp32 with one warning line; nothing else changes (hash checks, faults per graph).
    """

    def __init__(self, folder: ModelFolder, device: str = "auto", precision: str = "auto",
                 threads: int | None = None, verify_hashes: bool = True, expected_images: int | None = None):
        self.folder = folder
        self.verify_hashes = verify_hashes
        self.expected_images = expected_images  # images the run will predict (None: unknown); see cpu_variants
        self._graph_faults: dict[tuple[str, str], GraphError | None] = {}  # (runner, graph) -> fault (None: usable)
        self._hashes = GraphHashes()  # a file both runtimes of a CPU variant load is hashed once
        self._unsettled: dict[tuple[str, str], Path] = {}  # (runner, graph) whose hash _settle still checks
        self.threads = threads or default_threads()
        self.requested_precision, self.requested_device = precision, device
        #: cpu_reason: why the run is on the CPU although a GPU was allowed (the run summary shows it)
        self.device, self.cpu_reason = resolve_device(device)
        self._warm: set[tuple] = set()  # (graph path, batch shape) already run once on CUDA
        if self.device == "cuda" and precision in VARIANTS:
            log.info("--precision %s is a CPU variant; the model runs on the CPU", precision)
            self.device = "cpu"
        self.precision = resolve_precision(precision, self.device, folder.manifest, self.threads, expected_images)
        if self.device == "cuda" and CUDA not in folder.manifest.graph_set(self.precision).providers:
            log.info("the model's %s graphs are meant for the CPU provider (manifest); they run on the CPU",
                     self.precision)
            self.device = "cpu"
        self.variant_failure: str | None = None  # why a CPU variant was left for ONNX Runtime fp32
        self.variant_kinds = self._variant_kinds(precision)  # kinds the variant runs (None: every kind)
        self.runner = self._runner()
        self._fp32_runner: GraphRunner | None = None  # the tasks of other kinds, when the variant runs only some
        self._verified = False
        self._every_task = every_task_needs(folder.manifest)

    def _variant_kinds(self, requested: str) -> set[str] | None:
        """Under ``auto``, a variant runs only the task kinds that passed its check; asked for by name, all."""
        if self.precision not in VARIANTS or requested != "auto":
            return None
        return (self.folder.manifest.cpu_variants or {})[self.precision].usable_kinds()

    def _runner_for(self, task: TaskEntry) -> GraphRunner | OpenVinoRunner:
        """The variant's runner for the kinds it may run, ONNX Runtime fp32 (made on first use) for the others."""
        if self.variant_kinds is None or task.kind.value in self.variant_kinds:
            return self.runner
        if self._fp32_runner is None:  # the variant's own ONNX Runtime runner (its heads): one arena, shared sessions
            self._fp32_runner = getattr(self.runner, "ort_runner", None) or GraphRunner(
                self.folder.path, self.folder.manifest.graph_set("fp32"), self.device, self.threads)
        return self._fp32_runner

    def _runner(self) -> GraphRunner | OpenVinoRunner:
        variant = VARIANTS.get(self.precision)
        if variant is not None:
            check = (self.folder.manifest.cpu_variants or {}).get(variant.name)
            return OpenVinoRunner(self.folder.path, self.folder.manifest.graph_set(variant.graph_set), variant.hint,
                                  self.threads, variant.name, check.compiled if check is not None else None)
        graph_set = self.folder.manifest.graph_set(self.precision)
        return GraphRunner(self.folder.path, graph_set, self.device, self.threads)

    @property
    def provider(self) -> str:
        if self.precision in VARIANTS:
            return "OpenVINO CPU"
        return CUDA if self.device == "cuda" else CPU

    @property
    def description(self) -> str:
        note = ""  # why the run is on the CPU is said once, by the warning (inference.engines.providers)
        if self.variant_failure:
            note += f"; CPU variant left: {self.variant_failure}"
        if self.precision in VARIANTS:
            if self.variant_kinds is not None:
                note += (f"; for {', '.join(sorted(self.variant_kinds))} tasks only, the others on ONNX Runtime fp32 "
                         "(the kinds that passed the accuracy check)")
            return f"{self._runtime_version()} {self.provider} {self.precision} ({self.threads} CPU threads{note})"
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} {self.provider} {self.precision} ({self.threads} CPU threads{note})"

    @property
    def load_seconds(self) -> float:
        """Seconds spent making sessions and waiting for graph hashes so far."""
        return getattr(self.runner, "load_seconds", 0.0) + self._hashes.wait_seconds

    @staticmethod
    def _runtime_version() -> str:
        from inference.engines.openvino_runner import openvino_version

        return f"openvino {openvino_version()}"

    def _leave_variant(self, reason: str) -> None:
        """A CPU variant failed: the rest of the run uses ONNX Runtime fp32 (one warning line)."""
        log.warning("CPU variant %s failed, running ONNX Runtime fp32 instead: %s", self.precision, reason)
        self.variant_failure = reason
        self.precision, self.variant_kinds = "fp32", None
        self.runner = self._fp32_runner or getattr(self.runner, "ort_runner", None) or self._runner()
        self._fp32_runner = None
        self._graph_faults.clear()

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
            self.precision = resolve_precision(self.requested_precision, "cpu", self.folder.manifest, self.threads,
                                               self.expected_images)
            self.variant_kinds = self._variant_kinds(self.requested_precision)
            self.runner = self._runner()
            self._graph_faults.clear()
        log.debug("inference engine: %s", self.description)

    def _check_graph(self, name: str, runner: GraphRunner | OpenVinoRunner, wait: bool = True) -> GraphError | None:
        """The graph's file against the manifest's sha256 (hashed in a thread from before its session is made),
        then its session and outputs; the fault, if any.

        ONNX Runtime holds the GIL while it makes a session, so the hashing thread mostly runs once the session
        is made. ``wait=False`` (a batch about to run): a hash still running is checked by ``_settle`` after the
        batch ran (ONNX Runtime releases the GIL while it runs), before its outputs are used; a session that
        fails waits for the hash first, so a damaged file is always reported as damaged."""
        graph = runner.graph_set.graphs[name]
        path = self.folder.path / graph.path
        if self.verify_hashes:
            self._hashes.start(path)
        session_fault: EngineError | None = None
        session = None
        try:
            session = runner.session(name)
        except EngineError as exc:
            session_fault = exc
        mismatch = None
        if session is not None and isinstance(runner, GraphRunner):
            mismatch = graph_mismatch(self.folder.manifest, graph, session)
        if wait or session_fault is not None or mismatch is not None:  # a fault: the hash says first if it is damage
            self._hashes.finish(path)
        if self._hashes.running(path):
            self._unsettled[(runner.precision, name)] = path
        else:
            fault = self._hash_fault(name, runner)
            if fault is not None:
                return fault
        if session_fault is not None and isinstance(runner, OpenVinoRunner):
            self._leave_variant(str(session_fault))
            return self._check_graph(name, self.runner, wait)
        if session_fault is not None:
            return self._graph_error(name, str(session_fault), damaged=False)
        if mismatch is not None:
            runner.sessions.pop(name, None)
            return self._graph_error(name, f"cannot use graph {name!r} ({graph.path}): {mismatch}; it is not the "
                                     "graph the manifest describes (another model's or task's file?): re-export the model")
        return None

    def _graph_error(self, name: str, reason: str, damaged: bool = True) -> GraphError:
        shared = sum(name in t.path for t in self.folder.manifest.tasks) > 1
        return GraphError(name, reason, shared=shared, damaged=damaged, every_task=name in self._every_task)

    def _hash_fault(self, name: str, runner: GraphRunner | OpenVinoRunner) -> GraphError | None:
        """The fault of graph ``name``'s finished hash (unreadable file, sha256 not the manifest's), or None."""
        graph = runner.graph_set.graphs[name]
        problem = self._hashes.problem(self.folder.path / graph.path, graph.sha256) if self.verify_hashes else None
        if problem is None:
            return None
        runner.sessions.pop(name, None)
        return self._graph_error(name, f"cannot load graph {name!r} ({graph.path}): {problem}")

    def _settle(self, task: TaskEntry) -> None:
        """After a batch of ``task`` ran: the hashes its graphs were still waiting for, checked (GraphError, and the
        fault remembered, when one differs: the batch's outputs are not used)."""
        runner = self._runner_for(task)
        for name in task.path:
            path = self._unsettled.pop((runner.precision, name), None)
            if path is None:
                continue
            self._hashes.finish(path)
            fault = self._hash_fault(name, runner)
            if fault is not None:
                self._graph_faults[(runner.precision, name)] = fault
                raise GraphError(fault.graph, f"task {task.task_id}: {fault.reason}", shared=fault.shared,
                                 damaged=True, every_task=fault.every_task)

    def _fault(self, name: str, task: TaskEntry | None = None, wait: bool = True) -> GraphError | None:
        """The fault of graph ``name`` on the runner that serves ``task`` (default: the main runner), checked once."""
        runner = self._runner_for(task) if task is not None else self.runner
        key = (runner.precision, name)
        if key not in self._graph_faults:
            fault = self._check_graph(name, runner, wait)
            runner = self._runner_for(task) if task is not None else self.runner  # a failing variant was left meanwhile
            self._graph_faults[(runner.precision, name)] = fault
            return fault
        return self._graph_faults[key]

    def check_task(self, task: TaskEntry, wait: bool = True) -> None:
        """GraphError (naming the task and graph) when a graph on ``task``'s path is unusable (``wait=False``: a
        hash still running is left to ``_settle``)."""
        for name in task.path:
            fault = self._fault(name, task, wait)
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
        self.check_task(task, wait=False)
        if not self._verified:
            self._verify_provider(task.path[0])
            self.check_task(task, wait=False)
        runner = self._runner_for(task)
        try:
            inputs = [i for name in task.path for i in runner.graph_set.graphs[name].inputs]
            extra = extra_feeds(task, inputs, len(batch))
            self._warm_up(task, batch, extra)
            tensors = runner.run(batch, task.path, wanted=task.outputs.values(), extra=extra)
        except EngineError as exc:
            if isinstance(runner, OpenVinoRunner):
                self._leave_variant(str(exc))
                return self.run(task, batch)
            self._settle(task)  # a damaged file is named as such, not as the error it caused
            raise EngineError(f"task {task.task_id}: {exc}") from exc
        self._settle(task)
        return {role: np.asarray(tensors[name], dtype=np.float32) for role, name in task.outputs.items()}
