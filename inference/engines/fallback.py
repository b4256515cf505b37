"""The engine a run uses: ONNX Runtime first, PyTorch on the same weights when it fails.

``--engine auto`` (default): ONNX Runtime; when it cannot load or run the graphs the
reason is logged and PyTorch takes over for the rest of the run (CUDA if available,
else CPU). ``onnxruntime`` / ``torch``: that engine only. No fallback is silent.

A fault of one graph (``GraphError``: its file differs from the manifest's sha256 or its
outputs from the manifest's, or its session cannot be made) fails only the tasks whose path
holds it: their rows fail with the reason, every other task goes on with ONNX Runtime. Only a
session fault of a shared graph (encoder, FPN) switches the run to PyTorch, under ``auto``; a
changed or damaged file never does (PyTorch would read the same weights), and a task's
own head never does (one task is not worth the switch, and PyTorch needs that head too).

``start`` runs before the output folder is touched: it opens the engine (device, precision)
and checks the graphs every task needs (``OnnxEngine.start``). One of those being unusable
is fatal (``FatalError``) whether hashes are checked or not: damaged, or its session fails
and PyTorch cannot take over. So a run never ends with every row a fallback.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from inference.errors import DeviceUnavailable, EngineError, FatalError, GraphError
from contract.defaults import ENGINES
from contract.manifest import ModelFolder, TaskEntry

log = logging.getLogger(__name__)



class Engine(Protocol):
    description: str

    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]: ...


class RunEngine(Engine, Protocol):
    """What a run gets from ``factory.make_engine``: also ``start`` (what can fail for every row, checked
    before the output folder is touched) and ``settings`` (engine and precision as resolved)."""

    def start(self) -> None: ...

    @property
    def settings(self) -> dict[str, str]: ...


class FallbackEngine:
    """Lazily builds the chosen engine on first use; switches to PyTorch once if ONNX Runtime fails."""

    def __init__(self, folder: ModelFolder, engine: str = "auto", device: str = "auto",
                 precision: str = "auto", threads: int | None = None, verify_hashes: bool = True,
                 expected_images: int | None = None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        self.folder, self.verify_hashes = folder, verify_hashes
        self.engine, self.device, self.precision, self.threads = engine, device, precision, threads
        self.expected_images = expected_images  # images of the run, None if unknown (cpu_variants.worth_it)
        self._active: Engine | None = None
        self._onnx_failure: str | None = None
        self._onnx_ran = False  # ONNX Runtime predicted a batch (before any switch to PyTorch)

    @property
    def description(self) -> str:
        return self._active.description if self._active is not None else "(no engine started)"

    @property
    def load_seconds(self) -> float:
        return getattr(self._active, "load_seconds", 0.0)

    def _open_torch(self) -> Engine:
        from inference.engines.torch_engine import TorchEngine

        return TorchEngine(self.folder, device=self.device, threads=self.threads)

    def _switch_to_torch(self, reason: str) -> Engine:
        if self.engine == "onnxruntime":
            raise FatalError(f"ONNX Runtime cannot run the model: {reason} (use --engine auto to allow PyTorch)")
        log.warning("ONNX Runtime cannot be used, falling back to PyTorch: %s", reason)
        self._onnx_failure = reason
        try:
            self._active = self._open_torch()
        except EngineError as exc:
            raise FatalError(f"ONNX Runtime failed ({reason}) and the PyTorch fallback failed too ({exc})") from exc
        return self._active

    def _start(self) -> Engine:
        if self.engine == "torch":
            try:
                self._active = self._open_torch()
            except EngineError as exc:
                raise FatalError(str(exc)) from exc
            return self._active
        from contract.manifest import ManifestError
        from inference.engines.onnx_engine import OnnxEngine

        try:
            self._active = OnnxEngine(self.folder, self.device, self.precision, self.threads, self.verify_hashes,
                                      self.expected_images)
        except (ManifestError, DeviceUnavailable) as exc:  # e.g. --precision int8 on a model without it
            raise FatalError(str(exc)) from exc
        except EngineError as exc:
            return self._switch_to_torch(str(exc))
        return self._active

    def start(self) -> None:
        """What can fail for every row, checked before any image (FatalError): the engine, device, precision
        and the graphs every task needs."""
        engine = self._active or self._start()
        start = getattr(engine, "start", None)
        if start is None:
            return
        try:
            start()
        except DeviceUnavailable as exc:
            raise FatalError(str(exc)) from exc
        except GraphError as exc:
            if exc.damaged or self.engine != "auto":
                raise FatalError(f"{exc}; every task needs graph {exc.graph!r}: nothing can be predicted") from exc
            self._switch_to_torch(str(exc))
        except EngineError as exc:
            if self.engine != "auto":
                raise FatalError(f"ONNX Runtime cannot run the model: {exc}") from exc
            self._switch_to_torch(str(exc))

    @property
    def settings(self) -> dict[str, str]:
        """What decides the numbers, for a shard's part (merge refuses a mix): engine, precision and TTA as resolved."""
        if self._active is None:
            return {"engine": "(not started)", "precision": self.precision, "tta": "none"}
        name = "torch" if self._onnx_failure is not None or self.engine == "torch" else "onnxruntime"
        if self._onnx_failure is not None and self._onnx_ran:
            name = "onnxruntime, then torch"
        return {"engine": name, "precision": getattr(self._active, "precision", "fp32"), "tta": "none"}

    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        engine = self._active or self._start()
        try:
            outputs = engine.run(task, batch)
        except DeviceUnavailable as exc:  # --device cuda and the first session found CUDA unusable
            raise FatalError(str(exc)) from exc
        except GraphError as exc:
            if exc.every_task and exc.damaged:
                raise FatalError(f"{exc}; every task needs graph {exc.graph!r}: nothing can be predicted") from exc
            if exc.shared and not exc.damaged and self._onnx_failure is None and self.engine == "auto":
                return self._switch_to_torch(str(exc)).run(task, batch)
            raise
        except EngineError as exc:
            if self._onnx_failure is not None or self.engine == "torch":
                raise
            return self._switch_to_torch(str(exc)).run(task, batch)
        self._onnx_ran = self._onnx_ran or self._onnx_failure is None
        return outputs
