"""The contract every part of the project shares, and nothing heavier than numpy/OpenCV.

- ``contract.tasks``: the task registry (27 official tasks, kinds spelled as the CSVs).
- ``contract.kinds``: one spec per task kind (output role, record type and file,
  Grand-Challenge output socket, decoding, fallback prediction, label columns, metrics).
- ``contract.manifest``: the model folder's ``manifest.json`` schema and ``ModelFolder``;
  ``contract.ensemble``: its ensemble, composition and TTA fields.
- ``contract.postprocess``: mask postprocessing declared per task (largest component, holes,
  small components), labelled in bands by ``contract.components``.
- ``contract.imaging``: reading an image and the network's preprocessing.
- ``contract.csv_layout``: reading the challenge's ``csv_files/*.csv`` layout.
- ``contract.atomic``: the one way files are written atomically.

Rule (tested by ``tests/test_import_rules.py``): this package imports neither torch nor
onnxruntime, nor anything from ``inference``, ``network``, ``exporter``, ``training``,
``evaluation`` or ``phantoms``. Every other package may import it.
"""
