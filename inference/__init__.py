"""FMC_UIA inference runtime: reads the challenge's input layout, runs the exported
ONNX graphs (ONNX Runtime; PyTorch as a fallback) and writes the evaluator's files.

Kept free of heavy imports so that ``python -m inference`` starts fast.
"""

__version__ = "0.1.0"
