"""Run a graph set with ONNX Runtime, passing named tensors from graph to graph."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from exporter.errors import ExportError
from inference.manifest import IMAGE_INPUT, GraphSet

#: What ONNX Runtime raises when it cannot load or run a graph.
ORT_ERRORS = (
    _ort_state.Fail,
    _ort_state.InvalidArgument,
    _ort_state.InvalidGraph,
    _ort_state.NotImplemented,
    _ort_state.RuntimeException,
    _ort_state.NoSuchFile,
    RuntimeError,
)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class GraphRunner:
    """Holds one session per graph of a set; ``run`` evaluates the chosen graphs in order."""

    def __init__(self, model_dir: Path, graph_set: GraphSet, providers: Iterable[str] = ("CPUExecutionProvider",)):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.graph_set = graph_set
        self.sessions = {}
        for name, graph in graph_set.graphs.items():
            try:
                self.sessions[name] = ort.InferenceSession(str(Path(model_dir) / graph.path), options, providers=list(providers))
            except ORT_ERRORS as exc:
                raise ExportError(f"ONNX Runtime cannot load the {graph_set.precision} graph {graph.path}: {_first_line(exc)}") from exc

    def run(self, image: np.ndarray, graphs: Iterable[str] | None = None,
            extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """All tensors produced by ``graphs`` (default: every graph of the set) for ``image``.

        ``extra``: further inputs (``inference.feeds.extra_feeds``, e.g. task_index).
        """
        tensors: dict[str, np.ndarray] = {IMAGE_INPUT: image, **(extra or {})}
        for name in graphs if graphs is not None else self.graph_set.graphs:
            graph = self.graph_set.graphs[name]
            missing = [i for i in graph.inputs if i not in tensors]
            if missing:
                raise ExportError(f"graph {name} needs {missing}, which no earlier graph produces")
            feeds = {i: tensors[i] for i in graph.inputs}
            try:
                results = self.sessions[name].run(graph.outputs, feeds)
            except ORT_ERRORS as exc:
                raise ExportError(f"ONNX Runtime failed on the {self.graph_set.precision} graph {graph.path}: {_first_line(exc)}") from exc
            tensors.update(zip(graph.outputs, results))
        return tensors
