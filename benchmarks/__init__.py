"""Speed and accuracy benchmark of the runtime against a PyTorch-eager reference pipeline.

One command: ``python -m benchmarks.run [--scale 0.1] [--out benchmarks/results/NAME]``.

- ``benchmarks.dataset``: phantom input set in the proportions of the official validation set.
- ``benchmarks.model``: the EfficientNet-B4 + FPN baseline with all 27 heads, random weights, exported.
- ``benchmarks.reference``: the yardstick, ``python -m benchmarks.reference`` (the baseline's procedure).
- ``benchmarks.measure``: runs one pipeline as a subprocess; wall time, first output, peak memory.
- ``benchmarks.compare``: output agreement between two output folders, and the refusal rule.
- ``benchmarks.stages``: where the time goes (decode, resize, compute, postprocess, encode).
- ``benchmarks.accuracy``: trained model, reference vs runtime, scored with ``evaluation.evaluate``.
- ``benchmarks.report``: JSON result, Markdown tables, the results section of BENCHMARKS.md.
- ``benchmarks.gpu``: the same comparison on a GPU (``python -m benchmarks.gpu``), with parity and GPU memory
  (``benchmarks.gpu_checks``); ``--device cpu`` checks its plumbing without a GPU.
"""
