"""The model folder's description (``manifest.json``): one typed source of configuration.

An exported model folder holds ONNX graphs and this manifest. The runtime needs
nothing else: the manifest says how to preprocess an image, which graphs to run
for a task (in order, passing named tensors from one to the next), what each
task's outputs mean, and how the PyTorch fallback rebuilds the same network.

Graph chaining: every task lists the graphs of its path (e.g. ``encoder``,
``fpn``, ``head.fetal_head``). The first graph takes the tensor ``image``
(N x 3 x H x W float32, normalized); each graph's inputs are tensors produced
by earlier graphs of the path. A task's ``outputs`` map a role to a tensor name:

=============== ========= =====================================================
kind            role      tensor
=============== ========= =====================================================
segmentation    logits    N x K x H x W class logits at the model's input size
classification  probs     N x K softmax probabilities
detection       grid      N x 5 x h x w: x_min, y_min, x_max, y_max in [0, 1]
                          (sigmoid applied), then the objectness logit
Regression      points    N x 2M normalized x1, y1, x2, y2, ... (not clamped)
=============== ========= =====================================================

Optional fields (absent in single-model folders, see ``contract.ensemble``): ``members``
(an ensemble's member folders, each with the tasks it serves), ``composition`` (per task,
the members serving it and their weights) and ``tta`` (default test-time augmentation, per
task, and flip rules). ``TaskEntry.postprocess``: a segmentation task's mask
postprocessing (``contract.postprocess``), applied by ``TaskEntry.decode``.

``ModelFolder`` is a folder and its manifest, read and checked once; both engines and
the exporter's checks take one.

This module imports pydantic and numpy only (no torch, no onnxruntime; OpenCV when a mask is postprocessed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.atomic import atomic_write_text
from contract.defaults import (
    DEFAULT_ARCHITECTURE,
    DEFAULT_ENCODER,
    DEFAULT_INPUT_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CPU_VARIANTS,
)
from contract.export_records import CpuVariantCheck, Parity, Precision, TorchFallback
from contract.ensemble import EnsembleMember, MemberWeight, TestTimeAugmentation, check_composition
from contract.kinds import OUTPUT_ROLE, Prediction, Size, decode, spec_of
from contract.postprocess import MaskPostprocess, postprocess_mask
from contract.tasks import TaskKind, TaskRegistry, TaskSpec

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
IMAGE_INPUT = "image"




class ManifestError(ValueError):
    """A model folder that cannot be used: missing, unreadable or inconsistent manifest."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preprocessing(_Strict):
    """How an image becomes the network's input tensor (the baseline's training recipe)."""

    input_size: tuple[int, int] = Field(DEFAULT_INPUT_SIZE, description="height, width of the network input")
    color: Literal["RGB", "BGR"] = Field("RGB", description="channel order of the network input")
    interpolation: Literal["bilinear"] = Field("bilinear", description="cv2.INTER_LINEAR")
    scale: float = Field(255.0, description="pixel values are divided by this before normalization")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class ModelConfig(_Strict):
    """Everything needed to build the PyTorch network (``network.build_model``).

    ``architecture`` names a builder in ``network``'s registry; ``params`` are that
    builder's own options (decoder sizes and the like), passed through unchanged.
    """

    architecture: str = DEFAULT_ARCHITECTURE
    encoder_name: str = DEFAULT_ENCODER
    params: dict[str, int | float | str | bool | None] = Field(default_factory=dict)
    tasks: list[TaskSpec]
    preprocessing: Preprocessing = Preprocessing()

    @property
    def registry(self) -> TaskRegistry:
        return TaskRegistry(self.tasks)


class GraphFile(_Strict):
    """One ONNX file of a graph set."""

    path: str = Field(description="relative to the model folder")
    sha256: str
    bytes: int
    inputs: list[str]
    outputs: list[str]


class GraphSet(_Strict):
    """All graphs of one precision, and how far they are from fp32."""

    precision: Precision
    graphs: dict[str, GraphFile]
    providers: list[str] = Field(description="ONNX Runtime providers this set is meant for")
    deviation_from_fp32: dict[str, float] = Field(
        default_factory=dict, description="measured at export; empty for fp32 itself"
    )


class TaskEntry(_Strict):
    """A task as the exported model serves it."""

    task_id: str
    kind: TaskKind
    num_classes: int
    path: list[str] = Field(description="graph names to run in order")
    outputs: dict[str, str] = Field(description="role -> tensor name, see the module docstring")
    meaning: str = ""
    task_index: int | None = Field(
        None, description="task-conditioned graphs: the value fed as their int64 (N,) input task_index"
    )
    postprocess: MaskPostprocess | None = Field(
        None, description="masks only: postprocessing of the decoded native-size mask (contract.postprocess)"
    )

    @model_validator(mode="after")
    def _postprocess_fits(self) -> "TaskEntry":
        if self.postprocess is not None and not spec_of(self.kind).writes_mask:
            raise ValueError(f"task {self.task_id}: postprocess applies to masks (segmentation tasks), "
                             f"not to a {self.kind.value} task")
        return self

    def decode(self, output: np.ndarray, size: Size) -> Prediction:
        """One image's role tensor -> its prediction at native size, postprocessed as the manifest says.

        Every path to an output (batch pipeline, per-case layout, Python API, Ray) decodes here."""
        prediction = decode(self.kind, output, size)
        if self.postprocess is not None and prediction.mask is not None:
            postprocess_mask(prediction.mask, self.postprocess)
        return prediction

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(task_id=self.task_id, kind=self.kind, num_classes=self.num_classes)

    @property
    def output_tensor(self) -> str:
        return self.outputs[OUTPUT_ROLE[self.kind]]


class Manifest(_Strict):
    format_version: int = FORMAT_VERSION
    model: ModelConfig
    tasks: list[TaskEntry]
    graph_sets: dict[str, GraphSet]
    parity: Parity | None = None
    torch_fallback: TorchFallback = TorchFallback()
    versions: dict[str, str] = Field(default_factory=dict)
    source: dict[str, str] = Field(default_factory=dict, description="checkpoint file name, sha256")
    created: str = ""
    members: list[EnsembleMember] | None = Field(None, description="an ensemble's members (contract.ensemble)")
    tta: TestTimeAugmentation | None = Field(None, description="default test-time augmentation, flip rules")
    composition: dict[str, list[MemberWeight]] | None = Field(
        None, description="per task: the members serving it and their weights (contract.ensemble)")
    cpu_variants: dict[str, CpuVariantCheck] | None = Field(
        None, description="CPU variants checked against fp32 at export (exporter.cpu_check); absent: none checked")

    @model_validator(mode="after")
    def _ensemble_fields(self) -> "Manifest":
        if self.members is not None and not self.members:
            raise ValueError("an ensemble lists at least one member")
        check_composition([t.task_id for t in self.tasks], self.members, self.composition, self.tta)
        if self.tta is not None:
            registry = self.registry
            for task_id, rule in self.tta.flip_rules.items():
                if task_id not in registry:
                    raise ValueError(f"tta.flip_rules names task {task_id!r}, which the model does not have")
                rule.check(registry[task_id])
        return self

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"manifest format {self.format_version} is not supported (expected {FORMAT_VERSION})")
        if "fp32" not in self.graph_sets:
            raise ValueError("the manifest has no fp32 graph set")
        for name, graph_set in self.graph_sets.items():
            if name != graph_set.precision:
                raise ValueError(f"graph set {name!r} declares precision {graph_set.precision!r}")
            for task in self.tasks:
                missing = [g for g in task.path if g not in graph_set.graphs]
                if missing:
                    raise ValueError(f"task {task.task_id}: graph set {name} lacks graphs {missing}")
        for name, check in (self.cpu_variants or {}).items():
            if name not in CPU_VARIANTS:
                raise ValueError(f"cpu_variants names {name!r}; known CPU variants: {', '.join(CPU_VARIANTS)}")
            if check.graph_set not in self.graph_sets:
                raise ValueError(f"cpu_variants.{name} runs graph set {check.graph_set!r}, which the model lacks")
        for task in self.tasks:
            if OUTPUT_ROLE[task.kind] not in task.outputs:
                raise ValueError(f"task {task.task_id} ({task.kind.value}) has no {OUTPUT_ROLE[task.kind]!r} output")
        return self

    @property
    def registry(self) -> TaskRegistry:
        return TaskRegistry(t.spec for t in self.tasks)

    def task(self, task_id: str) -> TaskEntry:
        for entry in self.tasks:
            if entry.task_id == task_id:
                return entry
        self.registry[task_id]  # raises UnknownTaskError listing the known ids
        raise AssertionError("unreachable")

    def graph_set(self, precision: str) -> GraphSet:
        try:
            return self.graph_sets[precision]
        except KeyError:
            raise ManifestError(
                f"this model has no {precision} graphs (it has: {', '.join(self.graph_sets)}); "
                f"export them with: python export.py CHECKPOINT --out NEW_FOLDER --precision {precision}"
            ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(model_dir: Path, verify_hashes: bool = False, require_graphs: bool = True) -> Manifest:
    """Read and validate ``model_dir/manifest.json``; raise ManifestError with the fix on failure.

    ``require_graphs=False``: graph files may be missing (the runtime then fails only the tasks
    that need them, see ``missing_graphs``).
    """
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; make a model folder with: python export.py CHECKPOINT --out {model_dir}")
    try:
        manifest = Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as exc:
        raise ManifestError(f"{path}: invalid manifest: {exc}") from exc
    for graph_set in manifest.graph_sets.values():
        for graph in graph_set.graphs.values():
            file = Path(model_dir) / graph.path
            if not file.is_file():
                if not require_graphs:
                    continue
                raise ManifestError(f"{file}: graph listed in the manifest is missing; re-export the model")
            if verify_hashes and sha256_of(file) != graph.sha256:
                raise ManifestError(f"{file}: sha256 differs from the manifest; the file was changed or damaged")
    return manifest


def write_manifest(manifest: Manifest, model_dir: Path) -> Path:
    """Write the manifest atomically (temporary file, then rename)."""
    model_dir = Path(model_dir)
    text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
    target = atomic_write_text(model_dir / MANIFEST_NAME, text)
    return target


@dataclass(frozen=True)
class ModelFolder:
    """A model folder and its manifest, read (and, if asked, hash-checked) once."""

    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: Path, verify_hashes: bool = False, require_graphs: bool = True) -> "ModelFolder":
        """ManifestError (with the fix) when the folder is not a usable model folder."""
        return cls(Path(path), load_manifest(Path(path), verify_hashes=verify_hashes, require_graphs=require_graphs))

    def missing_graphs(self, precision: str = "fp32") -> list[str]:
        """Names of the graphs of ``precision`` whose files are missing."""
        graphs = self.manifest.graph_set(precision).graphs
        return [name for name, graph in graphs.items() if not (self.path / graph.path).is_file()]
