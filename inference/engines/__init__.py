"""Engines: what turns a batch of preprocessed images into a task's output tensors.

- ``runner``: ``GraphRunner``, ONNX Runtime sessions chained along a task's graph path
  (also used by the exporter's checks); ``providers``: CPU/CUDA choice.
- ``onnx_engine``: ``OnnxEngine``, a model folder run with ONNX Runtime, graphs checked on first use.
- ``cpu_variants``: faster CPU paths (``bf16``: the fp32 graphs on OpenVINO) and when ``auto`` uses them;
  ``openvino_runner``: the OpenVINO runner (imports the graphs the export compiled, on a like machine);
  ``openvino_probe``: can OpenVINO compile here (a child process, started early by a batch run).
- ``host``: CPU threads and the GPU device node, standard library only (asked before the heavy imports).
- ``torch_engine``: ``TorchEngine``, the PyTorch fallback on the same weights.
- ``fallback``: the ``Engine`` protocol and ``FallbackEngine`` (ONNX Runtime, PyTorch when it fails).
- ``ensemble`` / ``combine``: members and flip TTA averaged per kind.
- ``factory``: ``make_engine``, the one place a run gets its engine.
- ``infer``: ``infer_batch``, an engine's role tensor checked; ``predictor``: the per-image ``Predictor``.
"""
