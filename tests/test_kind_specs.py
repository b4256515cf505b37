"""One spec per task kind: every per-kind table of the project covers exactly the kinds of ``contract.kinds``.

Adding a fifth kind to ``contract.tasks.TaskKind`` makes these tests name each table
that still lacks it (the list in docs/architecture.md, "Where to add...").
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


#: Every table outside the contract that says what a kind does, in the package that must own it.
PER_KIND_TABLES = (
    "network.heads:HEAD_BUILDERS", "network.heads:ROLE_ACTIVATIONS",
    "training.kinds:KIND_TRAINING",
    "evaluation.scoring:_SCORERS", "evaluation.labels:_LABEL_COLUMNS",
    "review.collect:SCORERS", "review.collect:SCORE_NAMES", "review.draw:KIND_DRAWING",
    "phantoms.kinds:KIND_PHANTOMS",
    "inference.layouts.case:OUTPUT_SLUGS",
    "selection.score:SCORERS",
)


def tables_lacking(kinds: set) -> list[str]:
    """The per-kind tables that do not cover exactly ``kinds``, each named with what it lacks or has extra."""
    import importlib

    problems = []
    for table in PER_KIND_TABLES:
        module, name = table.split(":")
        covered = set(getattr(importlib.import_module(module), name))
        if covered != kinds:
            lacking = sorted(str(k) for k in kinds - covered)
            extra = sorted(str(k) for k in covered - kinds)
            problems.append(f"{table} lacks {lacking}" + (f", has extra {extra}" if extra else ""))
    return problems


def test_every_per_kind_table_covers_every_kind():
    assert tables_lacking(KINDS) == []


def test_a_fifth_kind_is_named_missing_in_every_table():
    fifth = "a fifth kind"
    problems = tables_lacking(KINDS | {fifth})
    assert len(problems) == len(PER_KIND_TABLES)
    assert all("'a fifth kind'" in p for p in problems)


#: Files outside contract/kinds/ (tests aside) that may name a specific kind: the task registry and one
#: table module per package that must own torch, metrics or drawing.
KIND_NAMING_LIMIT = 10


def test_few_files_outside_the_kind_specs_name_a_specific_kind():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    members = {kind.name for kind in TaskKind}
    naming = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("tests/", "contract/kinds/", ".venv/")) or "/." in relative:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Attribute) and node.attr in members and isinstance(node.value, ast.Name)
               and node.value.id == "TaskKind" for node in ast.walk(tree)):
            naming.append(relative)
    assert "contract/tasks.py" in naming  # the check sees what it looks for
    assert len(naming) <= KIND_NAMING_LIMIT, naming


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
