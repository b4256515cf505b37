"""The OpenVINO runner: the model folder's ONNX graphs compiled by the OpenVINO runtime for the CPU.

A CPU variant (``inference.engines.cpu_variants``) such as ``bf16`` runs the fp32 graph set as it
is: OpenVINO reads the exported ONNX files directly and executes them at the variant's inference
precision (``INFERENCE_PRECISION_HINT``: bf16 uses AVX-512 BF16 / AMX instructions where the CPU
has them). Nothing is converted or written on disk.

Same interface as ``inference.engines.runner.GraphRunner`` (``session``, ``run``, ``sessions``,
``graph_set``, ``precision``): ``OnnxEngine`` and the exporter's checks use either. A "session"
here is a compiled graph; it answers ``get_inputs``/``get_outputs``/``run`` like an ONNX Runtime
session, so the stage profiler (``benchmarks.stages``) times it the same way.

Why not ONNX Runtime's OpenVINO execution provider plugin (``onnxruntime-ep-openvino``)? It
offers its devices only on Intel hardware (it skips every ``OrtHardwareDevice`` whose vendor id is
not Intel's), so on an AMD CPU it registers and then has no device to run on (docs/cpu.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from contract.manifest import IMAGE_INPUT, GraphSet
from inference.errors import EngineError
from inference.engines.graph_check import BackgroundSha256
from inference.engines.openvino_probe import compile_config
from inference.engines.runner import default_threads

if TYPE_CHECKING:
    from contract.export_records import CompiledGraphs

log = logging.getLogger(__name__)

_CORE: list[Any] = []  # one ov.Core per process


def openvino_core() -> Any:
    """The process's ``openvino.Core`` (imported and made on first use); EngineError if it cannot be."""
    if not _CORE:
        try:
            import openvino
        except ImportError as exc:
            raise EngineError(f"the OpenVINO runtime cannot be imported: {exc}") from exc
        _CORE.append(openvino.Core())
    return _CORE[0]


def openvino_version() -> str:
    """The OpenVINO runtime's version (e.g. 2026.4.1), or "not installed"."""
    try:
        import openvino
    except ImportError:
        return "not installed"
    return openvino.__version__.split("-")[0]


@dataclass(frozen=True)
class _Port:
    """What ``get_inputs``/``get_outputs`` give, as ONNX Runtime does: the tensor's name."""

    name: str
    type: str = "tensor(float)"


class CompiledGraph:
    """One compiled graph and its infer request, answering like an ONNX Runtime session."""

    def __init__(self, compiled: Any, path: Path):
        self.compiled, self.path = compiled, path
        self.request = compiled.create_infer_request()
        self._inputs = [self._name(p, path) for p in compiled.inputs]
        self._outputs = [self._name(p, path) for p in compiled.outputs]

    @staticmethod
    def _name(port: Any, path: Path) -> str:
        names = port.get_names()
        if not names:
            raise EngineError(f"OpenVINO gives an unnamed tensor in {path}")
        return port.get_any_name()

    def get_inputs(self) -> list[_Port]:
        return [_Port(n) for n in self._inputs]

    def get_outputs(self) -> list[_Port]:
        return [_Port(n) for n in self._outputs]

    def get_providers(self) -> list[str]:
        return ["OpenVINO"]

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer({n: np.ascontiguousarray(feed[n]) for n in self._inputs})
        by_name = {self._outputs[i]: results[port] for i, port in enumerate(self.compiled.outputs)}
        return [np.asarray(by_name[n]) for n in (names or self._outputs)]


#: Graphs left to ONNX Runtime (fp32) inside a CPU variant: the per-task heads. They are a few percent
#: of the compute, but every compiled OpenVINO graph keeps its own buffers (35-70 MB per segmentation head
#: at batch 8 on B4, 1.2 GB for all 27), while ONNX Runtime's sessions share one arena.
ORT_GRAPH_PREFIXES = ("head.",)


class OpenVinoRunner:
    """Graphs of ``graph_set`` compiled by OpenVINO on first use (heads: ONNX Runtime fp32), run in order."""

    def __init__(self, folder: Path, graph_set: GraphSet, hint: str, threads: int | None = None,
                 variant: str | None = None, compiled: CompiledGraphs | None = None):
        from inference.engines.runner import GraphRunner

        self.folder, self.graph_set, self.hint = Path(folder), graph_set, hint
        self.variant = variant or hint
        self.device = "cpu"
        self.threads = threads or default_threads()
        self.sessions: dict[str, Any] = {}
        self.compile_seconds = 0.0
        self.imported: list[str] = []  # graphs imported from the folder's compiled files
        self.compiled = compiled if compiled is not None and self._fits(compiled) else None
        self.ort_runner = GraphRunner(self.folder, graph_set, "cpu", self.threads)

    @staticmethod
    def _fits(compiled: CompiledGraphs) -> bool:
        """Whether the folder's compiled graphs may be imported here: same OpenVINO, same kernel-relevant flags."""
        from inference.engines.cpu_variants import kernel_flags

        here = (openvino_version(), kernel_flags())
        if (compiled.openvino, sorted(compiled.cpu_flags)) == here:
            return True
        log.info("compiled graphs not used (made by OpenVINO %s on a CPU with %s; here %s with %s): the ONNX files "
                 "are compiled", compiled.openvino, " ".join(compiled.cpu_flags), here[0], " ".join(here[1]))
        return False

    def _import(self, name: str, core: Any, config: dict[str, object]) -> Any | None:
        """Graph ``name`` imported from the folder's compiled file (its sha256 checked meanwhile), or None (then
        the ONNX file is compiled: no compiled file, a damaged one, or one this OpenVINO refuses)."""
        blob = self.compiled.graphs.get(name) if self.compiled is not None else None
        if blob is None:
            return None
        path = self.folder / blob.path
        if self.folder.resolve() not in path.resolve().parents:
            log.warning("compiled graph %s (%s) lies outside the model folder; compiling the ONNX file", name, blob.path)
            return None
        hashing = BackgroundSha256(path)
        try:
            model = core.import_model(path.read_bytes(), "CPU", config)
        except Exception as exc:  # OSError, or whatever OpenVINO raises for a blob it cannot read
            hashing.result()
            log.warning("compiled graph %s (%s) not imported (%s); compiling the ONNX file", name, blob.path,
                        str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
            return None
        digest = hashing.result()
        if digest != blob.sha256:
            log.warning("compiled graph %s (%s): its sha256 differs from the manifest (damaged?); compiling the ONNX "
                        "file", name, blob.path)
            return None
        self.imported.append(name)
        return model

    @property
    def precision(self) -> str:
        return self.variant

    def session(self, name: str) -> Any:
        """The compiled graph ``name`` (compiled on first use; a head: its ONNX Runtime session); EngineError when
        it cannot be made."""
        if name in self.sessions:
            return self.sessions[name]
        if name.startswith(ORT_GRAPH_PREFIXES):
            self.sessions[name] = self.ort_runner.session(name)
            return self.sessions[name]
        graph = self.graph_set.graphs.get(name)
        if graph is None:
            raise EngineError(f"graph {name!r} is not in the model's {self.graph_set.precision} graph set")
        path = self.folder / graph.path
        core = openvino_core()
        started = time.perf_counter()
        config = compile_config(self.hint, self.threads)
        try:
            compiled = self._import(name, core, config) or core.compile_model(str(path), "CPU", config)
            session = CompiledGraph(compiled, path)
        except EngineError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError and its own exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EngineError(f"OpenVINO cannot compile {path} at {self.hint}: {type(exc).__name__}: {first}") from exc
        elapsed = time.perf_counter() - started
        self.compile_seconds += elapsed
        log.debug("OpenVINO %s %s (%s) in %.2f s", "imported" if name in self.imported else "compiled", name,
                  self.hint, elapsed)
        self.sessions[name] = session
        return session

    def uses_cuda(self, name: str) -> bool:
        return False

    def run(self, batch: np.ndarray, graphs: Sequence[str] | None = None,
            wanted: Iterable[str] | None = None, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """As ``GraphRunner.run``: the ``wanted`` tensors (default: all) of ``graphs`` run in order."""
        graphs = list(graphs if graphs is not None else self.graph_set.graphs)
        tensors: dict[str, np.ndarray] = {IMAGE_INPUT: batch, **(extra or {})}
        try:
            for name in graphs:
                session = self.session(name)
                inputs = [p.name for p in session.get_inputs()]
                missing = [n for n in inputs if n not in tensors]
                if missing:
                    raise EngineError(f"graph {name} needs {missing[0]!r}, which no earlier graph produces")
                outputs = [p.name for p in session.get_outputs()]
                tensors.update(zip(outputs, session.run(outputs, {n: tensors[n] for n in inputs})))
        except EngineError:
            raise
        except Exception as exc:  # OpenVINO's errors have no common base class worth naming
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EngineError(f"OpenVINO failed on the graphs {graphs}: {type(exc).__name__}: {first}") from exc
        if wanted is None:
            return tensors
        return {name: tensors[name] for name in wanted}
