"""Every default and choice list shared by more than one part, in one place (standard library only).

Imported by ``python -m inference`` before its arguments are parsed, so it must stay light.
"""

from __future__ import annotations

#: The official baseline's network (seed 000): architecture and encoder.
DEFAULT_ARCHITECTURE = "mh_mtl_fpn"
DEFAULT_ENCODER = "efficientnet-b4"
#: Network input (height, width) when a checkpoint does not say.
DEFAULT_INPUT_SIZE = (256, 256)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Graph sets an exported model folder may hold.
PRECISIONS = ("fp32", "fp16", "int8")
#: ``--device``: auto = CUDA when it really works, else the CPU.
DEVICES = ("auto", "cuda", "cpu")
#: ``--engine``: auto = ONNX Runtime, PyTorch on the same weights when it fails.
ENGINES = ("auto", "onnxruntime", "torch")
#: ``--tta``: none, or flip (each image and its mirror, averaged); tools add "auto" (what the manifest says).
TTA_MODES = ("none", "flip")
TTA_CHOICES = ("auto", *TTA_MODES)
#: CPU variants: a graph set run by another CPU runtime at another inference precision
#: (``inference.engines.cpu_variants``), checked against fp32 at export (``exporter.cpu_check``).
CPU_VARIANTS = ("bf16",)
#: ``--precision`` of the runtime: auto = fp16 on CUDA when the model has it; on a CPU the fastest CPU
#: variant that passed its accuracy check and can run here; else fp32.
PRECISION_CHOICES = ("auto", *PRECISIONS, *CPU_VARIANTS)
