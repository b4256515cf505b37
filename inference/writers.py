"""Writing outputs: atomically (temporary file in the same folder, then ``os.replace``),
and only inside the output folder (``OutputGuard``).

A crash at any moment leaves either the previous file or none, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Sequence

import cv2
import numpy as np

from contract.atomic import atomic_write_bytes as _atomic_write_bytes
from inference.errors import OutputPathError
from contract.kinds import Record


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class OutputGuard:
    """Resolves output paths and refuses any outside the output folder or inside the input folder."""

    def __init__(self, output_dir: Path, input_dir: Path | None = None):
        self.root = Path(output_dir).resolve()
        self.input_root = Path(input_dir).resolve() if input_dir is not None else None

    def resolve(self, relative: str | os.PathLike[str]) -> Path:
        """``relative`` (already free of the CSV's leading ``../``) -> absolute path in the output folder."""
        text = str(relative)
        if not text.strip():
            raise OutputPathError("empty output path")
        if Path(text).is_absolute() or PurePosixPath(text.replace("\\", "/")).is_absolute():
            raise OutputPathError(f"output path {text!r} is absolute; it must be relative to the output folder")
        target = (self.root / text).resolve()
        if not _is_within(target, self.root) or target == self.root:
            raise OutputPathError(f"output path {text!r} escapes the output folder {self.root}")
        if self.input_root is not None and _is_within(target, self.input_root):
            raise OutputPathError(f"output path {text!r} would lie inside the input folder {self.input_root}")
        return target

    def mask_target(self, mask_path: str) -> Path:
        """The CSV's ``mask_path`` with its leading ``../`` and ``./`` parts removed, under the output folder."""
        parts = list(PurePosixPath(mask_path.replace("\\", "/")).parts)
        if parts and parts[0] == "/":
            raise OutputPathError(f"mask_path {mask_path!r} is absolute; expected a path relative to csv_files/")
        while parts and parts[0] in ("..", "."):
            parts.pop(0)
        if not parts:
            raise OutputPathError(f"mask_path {mask_path!r} names no file")
        return self.resolve(str(PurePosixPath(*parts)))


def write_json_records(target: Path, records: Sequence[Record]) -> Path:
    """Validated records -> a JSON list, written atomically (plain Python floats and ints only)."""
    payload = [record.model_dump(mode="json") for record in records]
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    _atomic_write_bytes(Path(target), text.encode("utf-8"), durable=True)
    return Path(target)


def encode_png(mask: np.ndarray) -> bytes:
    """H x W uint8 class indices -> PNG bytes (single channel, 8-bit)."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask must be H x W uint8, got {mask.dtype} {mask.shape}")
    ok, buffer = cv2.imencode(".png", mask)
    if not ok:
        raise OSError("OpenCV could not encode the mask as PNG")
    return buffer.tobytes()


def write_mask(target: Path, mask: np.ndarray) -> Path:
    """Write a mask PNG atomically at ``target`` (already checked by ``OutputGuard``)."""
    _atomic_write_bytes(Path(target), encode_png(mask))
    return Path(target)


def check_writable(output_dir: Path) -> None:
    """Create the output folder and prove a file can be written there (raises OSError otherwise)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output_dir, prefix=".write-test.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)

