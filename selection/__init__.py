"""Choosing a model's configuration per task from labelled data (``python export.py MEMBER... --select-on VAL_DIR``).

For every task, on a labelled validation folder in the challenge layout, with the official
metrics: each member alone, ensembles of members, flip TTA on or off (where the task's flip
rule allows) and, for segmentation, mask postprocessing; the choice is written into the
model folder's manifest and explained in its selection report. See docs/selection.md.

- ``selection.cli``: the command line (``export.py`` routes ``--select-on`` here);
- ``selection.select``: ``select_model`` (member folders -> the chosen folder);
- ``selection.cache``: each member's estimates, computed once per task;
- ``selection.candidates``: configurations and their cost; ``selection.choose``: the choice
  and its guard (cross-validation against the default); ``selection.score``: the official
  metrics on predictions in memory; ``selection.compose``: writing the folder;
  ``selection.report``: the report (JSON and markdown).
"""

from selection.select import SelectionError, SelectOptions, select_model

__all__ = ["SelectOptions", "SelectionError", "select_model"]
