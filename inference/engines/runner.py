"""The one ONNX Runtime runner: sessions on a model folder's graph set, graph paths run in order.

Used by the runtime (``inference.engines.onnx_engine``) and by the exporter's parity and precision
checks, so what export proves is what the image runs. Sessions are created when a
graph is first needed. The first graph of a path takes the tensor ``image``; each
graph's inputs are tensors produced by earlier graphs. On CUDA the tensors passed
between graphs stay on the GPU (IO binding); only the wanted outputs come back.
Every ONNX Runtime failure becomes ``EngineError`` naming the graph file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from contract.manifest import IMAGE_INPUT, GraphSet
from inference.errors import EngineError
from inference.engines.host import default_threads  # noqa: F401  (re-exported: callers import it from here)
from inference.engines.providers import CUDA, session_providers

log = logging.getLogger(__name__)

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


_SHARED_CPU_ARENA: list[bool] = []  # filled once per process by shared_cpu_arena()


def shared_cpu_arena() -> bool:
    """Register one CPU memory arena for every session of this process (once); False if ORT refuses.

    By default each session (encoder, FPN, every head) grows an arena of its own, and
    the process holds the sum of their peaks (1.9 GB for B4 at batch 8); sharing one
    arena holds only the largest (0.75 GB), at the same speed (BENCHMARKS.md).
    """
    if not _SHARED_CPU_ARENA:
        import onnxruntime as ort

        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({}))
            _SHARED_CPU_ARENA.append(True)
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            log.debug("no shared CPU arena (%s: %s); each session keeps its own", type(exc).__name__, exc)
            _SHARED_CPU_ARENA.append(False)
    return _SHARED_CPU_ARENA[0]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class GraphRunner:
    """Sessions on the graphs of ``graph_set`` (files under ``folder``), made on first use."""

    def __init__(self, folder: Path, graph_set: GraphSet, device: str = "cpu", threads: int | None = None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise EngineError(f"onnxruntime cannot be imported: {exc}") from exc
        self.folder, self.graph_set, self.device = Path(folder), graph_set, device
        self.threads = threads or default_threads()
        self.sessions: dict[str, Any] = {}
        self.load_seconds = 0.0  # spent making sessions (each on its graph's first use)

    @property
    def precision(self) -> str:
        return self.graph_set.precision

    def _options(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: the decode/encode workers share these
        # cores, and spinning threads took their CPU (2x slower batch runs on 2 cores, BENCHMARKS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.device == "cpu" and shared_cpu_arena():
            options.add_session_config_entry("session.use_env_allocators", "1")
        options.log_severity_level = 3  # errors only: stderr is what a submitter sees
        return options

    def session(self, name: str) -> Any:
        """The session of graph ``name`` (created on first use); EngineError when it cannot be loaded."""
        if name in self.sessions:
            return self.sessions[name]
        import onnxruntime as ort

        graph = self.graph_set.graphs.get(name)
        if graph is None:
            raise EngineError(f"graph {name!r} is not in the model's {self.precision} graph set")
        path = self.folder / graph.path
        started = time.perf_counter()
        try:
            session = ort.InferenceSession(str(path), sess_options=self._options(),
                                           providers=session_providers(self.device, self.graph_set))
        except Exception as exc:  # onnxruntime raises its own (Fail, InvalidGraph, ...) and RuntimeError
            raise EngineError(f"ONNX Runtime cannot load the {self.precision} graph {path}: "
                              f"{type(exc).__name__}: {_first_line(exc)}") from exc
        elapsed = time.perf_counter() - started
        self.load_seconds += elapsed
        log.debug("session %s (%s) in %.2f s", name, session.get_providers()[0], elapsed)
        self.sessions[name] = session
        return session

    def uses_cuda(self, name: str) -> bool:
        return CUDA in self.session(name).get_providers()

    def run(self, batch: np.ndarray, graphs: Sequence[str] | None = None,
            wanted: Iterable[str] | None = None, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run ``graphs`` (default: every graph of the set, in order) on ``batch``.

        Returns the ``wanted`` tensors (default: every tensor produced) as host arrays.
        ``extra``: inputs besides the image (``inference.engines.feeds.extra_feeds``: task_index).
        """
        graphs = list(graphs if graphs is not None else self.graph_set.graphs)
        try:
            if self.device == "cuda" and wanted is not None:
                return self._run_on_device(batch, graphs, set(wanted), extra=extra)
            tensors = self._run_on_host(batch, graphs, extra)
        except EngineError:
            raise
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            raise EngineError(f"ONNX Runtime failed on the {self.precision} graphs {graphs}: "
                              f"{type(exc).__name__}: {_first_line(exc)}") from exc
        if wanted is None:
            return tensors
        return {name: tensors[name] for name in wanted}

    def _feed(self, session: Any, name: str, tensors: dict[str, Any]) -> dict[str, Any]:
        feed = {}
        for spec in session.get_inputs():
            if spec.name not in tensors:
                raise EngineError(f"graph {name} needs {spec.name!r}, which no earlier graph produces")
            value = tensors[spec.name]
            wanted = _NUMPY_TYPES.get(spec.type)
            feed[spec.name] = value.astype(wanted, copy=False) if wanted is not None else value
        return feed

    def _run_on_host(self, batch: np.ndarray, graphs: list[str],
                     extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        tensors: dict[str, np.ndarray] = {IMAGE_INPUT: batch, **(extra or {})}
        for name in graphs:
            session = self.session(name)
            names = [out.name for out in session.get_outputs()]
            tensors.update(zip(names, session.run(names, self._feed(session, name, tensors))))
        return tensors

    def _run_on_device(self, batch: np.ndarray, graphs: list[str], wanted: set[str],
                       device_type: str = "cuda", extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """IO binding: intermediate tensors stay on ``device_type``; the ``wanted`` outputs come back to the host."""
        import onnxruntime as ort

        values: dict[str, Any] = {}
        for name in graphs:
            session = self.session(name)
            binding = session.io_binding()
            for spec in session.get_inputs():
                if spec.name not in values and extra and spec.name in extra:  # task_index
                    values[spec.name] = ort.OrtValue.ortvalue_from_numpy(extra[spec.name], device_type, 0)
                if spec.name not in values:  # the image (only the first graph reads it)
                    if spec.name != IMAGE_INPUT:
                        raise EngineError(f"graph {name} needs {spec.name!r}, which no earlier graph produces")
                    dtype = _NUMPY_TYPES.get(spec.type, np.float32)
                    values[spec.name] = ort.OrtValue.ortvalue_from_numpy(batch.astype(dtype, copy=False), device_type, 0)
                binding.bind_ortvalue_input(spec.name, values[spec.name])
            names = [out.name for out in session.get_outputs()]
            for out in names:
                binding.bind_output(out, "cpu" if out in wanted else device_type, 0)
            session.run_with_iobinding(binding)
            values.update(zip(names, binding.get_outputs()))
        return {name: values[name].numpy() for name in wanted}
