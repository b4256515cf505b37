"""What an export measured and recorded in the manifest beside the graphs: parity against PyTorch, where the
PyTorch fallback finds its weights, and the accuracy checks of CPU variants (``contract.manifest``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.tasks import TaskKind

Precision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parity(_Strict):
    """Worst relative error of ONNX Runtime (CPU) against PyTorch, per task, measured at export."""

    max_rel_error: dict[str, float]
    tolerance: float
    batch_sizes: list[int]
    inputs: list[str] = Field(description="kinds of test input, e.g. random, image-like")


class TorchFallback(_Strict):
    """Where the PyTorch fallback finds its weights."""

    weights_from: Literal["onnx_initializers"] = "onnx_initializers"
    graph_set: Precision = "fp32"
    extra_file: str | None = Field(None, description="tensors not stored in the graphs (.npz), if any")
    extra_bytes: int = 0


class CompiledBlob(_Strict):
    """One graph as OpenVINO compiled it (``CompiledModel.export_model``), a file in the model folder."""

    path: str = Field(description="relative to the model folder")
    sha256: str
    bytes: int


class CompiledGraphs(_Strict):
    """A CPU variant's graphs compiled at the check, so that a run imports them (B4's encoder: about 0.15 s)
    instead of compiling the ONNX file (about 0.6 s). Used only by the same OpenVINO version on a CPU with
    the same instruction flags (``inference.engines.openvino_runner``); anywhere else the ONNX files are
    compiled as before."""

    openvino: str = Field(description="the OpenVINO version that compiled them, e.g. 2026.4.1")
    cpu_flags: list[str] = Field(description="the compiling CPU's flags among those OpenVINO's kernels depend on")
    graphs: dict[str, CompiledBlob] = Field(description="graph name -> its compiled file")


class CpuVariantCheck(_Strict):
    """A CPU variant's accuracy check against fp32 (``exporter.cpu_check``), per task kind: ``--precision auto``
    on a CPU runs a task on the variant only when the task's kind passed (``usable_kinds``)."""

    graph_set: str = Field("fp32", description="the graph set the variant runs")
    runtime: str = Field(description="what ran it, e.g. 'openvino 2026.4.1 CPU, inference precision bf16'")
    passed: bool = Field(description="every kind checked passed")
    kinds_passed: list[str] | None = Field(
        None, description="the task kinds whose outputs passed (None: all if passed); auto runs only these on it")
    images: int = Field(description="held-out images compared")
    figures: dict[str, float] = Field(default_factory=dict, description="worst deviations from fp32, metric gaps")
    tolerances: dict[str, float] = Field(default_factory=dict, description="what each figure had to stay within")
    failures: list[str] = Field(default_factory=list, description="the first rows or metrics beyond a tolerance")
    speedup: float | None = Field(None, description="fp32 model time / variant model time, measured at the check")
    fp32_ms_per_image: float | None = Field(None, description="fp32 model time per image at the check")
    startup_s: float | None = Field(
        None, description="variant's extra start-up (probe, import, compile; less what its compiled graphs save) at the check")
    compiled: CompiledGraphs | None = Field(None, description="the graphs compiled at the check (optional)")
    cpu: str = Field("", description="the CPU the check ran on")
    checked: str = Field("", description="UTC time of the check")

    def usable_kinds(self) -> set[str]:
        """The task kinds (``TaskKind`` values) that may run on the variant under ``--precision auto``."""
        if self.kinds_passed is not None:
            return set(self.kinds_passed)
        return {kind.value for kind in TaskKind} if self.passed else set()
