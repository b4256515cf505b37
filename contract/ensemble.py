"""The manifest's optional ensemble and test-time augmentation fields (absent in single-model folders).

``members``: an ensemble folder holds every member as a complete model folder of its own
under ``members/<k>/`` (its own ``manifest.json`` and graphs, parity-verified at its export);
the top-level manifest lists them and repeats member 0's description (tasks,
preprocessing, graphs under ``members/0/``), so the shared task list and preprocessing are
read from one place. ``tta``: whether the runtime flips images by default
(``python -m inference --tta auto``) and every task's flip rule (``contract.flip``).

A manifest without these fields (every folder exported before them) is a single model
without TTA; its flip rules are the defaults of ``contract.flip``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.flip import FlipRule
MEMBERS_FOLDER = "members"


class EnsembleMember(BaseModel):
    """One member of an ensemble: where its model folder is, and what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="the member's model folder, relative to the ensemble folder")
    architecture: str
    encoder_name: str
    source: dict[str, str] = Field(default_factory=dict, description="checkpoint (or folder) name, sha256")

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if not parts or PurePosixPath(value).is_absolute() or ".." in parts:
            raise ValueError(f"member path {value!r} must be a folder inside the model folder")
        return value


class TestTimeAugmentation(BaseModel):
    """The default test-time augmentation and each task's flip rule (tasks left out: their default)."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["none", "flip"] = "none"
    flip_rules: dict[str, FlipRule] = Field(default_factory=dict)
