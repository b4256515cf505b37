"""The stage timers of ``benchmarks.pipeline_stages`` name functions that exist: a rename in the runtime fails here,
not in the middle of a benchmark sitting."""

from __future__ import annotations

import importlib

import pytest

from benchmarks.pipeline_stages import BOOKKEEPING, STAGES, TIMED


@pytest.mark.parametrize(("module_name", "attribute", "stage"), TIMED)
def test_every_timed_function_exists(module_name: str, attribute: str, stage: str) -> None:
    owner_name, _, name = attribute.rpartition(".")
    module = importlib.import_module(module_name)
    owner = getattr(module, owner_name) if owner_name else module
    assert callable(getattr(owner, name)), f"{module_name}.{attribute}"
    assert stage in STAGES + BOOKKEEPING
