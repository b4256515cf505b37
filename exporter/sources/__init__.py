"""The three things ``export.py`` can export, as sources of the one pipeline (``exporter.pipeline``).

- ``staged.StagedSource``: a network described by stages (a baseline or seed-variant
  checkpoint, or a network handed to ``exporter.export_model``);
- ``brought.BroughtSource``: a team's PyTorch network (``--model MODULE:FACTORY``);
- ``onnx_file.OnnxFileSource``: a team's ONNX file (``--task-map``).

``base`` says what a source gives the pipeline.
"""
