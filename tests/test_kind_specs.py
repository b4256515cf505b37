"""One spec per task kind: every per-kind table of the project covers exactly the kinds of ``contract.kinds``.

Adding a fifth kind to ``contract.tasks.TaskKind`` makes these tests name each table
that still lacks it (the list in README "Architecture").
"""

from __future__ import annotations

import numpy as np
import pytest

from contract.kinds import KIND_SPECS, OUTPUT_ROLE, PREDICTION_FILES, decode, fallback, spec_of
from contract.tasks import TaskKind

KINDS = set(TaskKind)


def test_every_kind_has_a_spec_with_distinct_roles_files_and_sockets():
    assert set(KIND_SPECS) == KINDS
    assert len(set(OUTPUT_ROLE.values())) == len(KINDS)
    assert len({s.gc_socket for s in KIND_SPECS.values()}) == len(KINDS)
    assert len(set(PREDICTION_FILES.values())) == len(PREDICTION_FILES)
    for kind, spec in KIND_SPECS.items():
        assert spec.kind is kind and spec.metrics and spec.label_columns
        assert (spec.record_type is None) == (spec.prediction_file is None)
        assert spec.meaning.startswith(spec.role + ":")


@pytest.mark.parametrize("table", ["network.heads:HEAD_BUILDERS", "network.heads:ROLE_ACTIVATIONS",
                                   "training.losses:KIND_LOSSES", "evaluation.scoring:_SCORERS",
                                   "evaluation.labels:_LABEL_COLUMNS", "inference.layouts.case:OUTPUT_SLUGS",
                                   "selection.score:SCORERS"])
def test_per_kind_tables_cover_every_kind(table):
    import importlib

    module, name = table.split(":")
    assert set(getattr(importlib.import_module(module), name)) == KINDS


@pytest.mark.parametrize("kind,num,output", [
    (TaskKind.SEGMENTATION, 3, np.zeros((3, 8, 8), np.float32)),
    (TaskKind.CLASSIFICATION, 3, np.array([0.2, 0.5, 0.3], np.float32)),
    (TaskKind.DETECTION, 1, np.zeros((5, 4, 4), np.float32)),
    (TaskKind.REGRESSION, 2, np.array([0.1, 0.2, 0.3, 0.4], np.float32)),
])
def test_decode_and_fallback_give_valid_outputs_of_the_kind(kind, num, output):
    spec = spec_of(kind)
    for prediction in (decode(kind, output, (20, 30)), fallback(kind, num, (20, 30))):
        assert prediction.kind is kind
        if spec.record_type is None:
            assert prediction.mask.shape == (20, 30) and prediction.mask.dtype == np.uint8
        else:
            record = prediction.record("images/a.png", "task")
            assert isinstance(record, spec.record_type)
