"""The folder of full-size overlay PNGs beside the review page, written atomically as a whole.

The PNGs are written into a fresh sibling folder (``.NAME.new-*``); ``commit`` swaps it in
for the previous one, so a page never links to a half-written folder and a failed review
leaves the previous folder as it was. A marker file says the folder is review's own: an
existing folder without it (and not empty) is never replaced.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Optional

import cv2
import numpy as np

log = logging.getLogger(__name__)

MARKER = ".review-overlays"


class OverlayFolderError(OSError):
    """The overlay folder cannot be written."""


class OverlayFolderInTheWay(OverlayFolderError):
    """The target exists and is not review's own folder: never replaced."""


def check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise OverlayFolderInTheWay(f"{target}: exists and is not a folder; choose another --out")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise OverlayFolderInTheWay(f"{target}: not empty and not written by review (no {MARKER}); "
                                 "refusing to replace it: choose another --out")


def overlay_name(index: int, task_id: str, image_path: str) -> str:
    """A file name safe in a URL: the row's position, task and image stem."""
    stem = Path(image_path.replace("\\", "/")).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{index:05d}-{task_id}-{stem}") + ".png"


class OverlayFolder:
    """``with OverlayFolder(target) as folder: folder.add(name, image); ...; folder.commit()``."""

    def __init__(self, target: Path):
        self.target = Path(target).absolute()
        check_target(self.target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.new-", dir=self.target.parent))
        except OSError as exc:
            raise OverlayFolderError(f"{self.target}: cannot write the overlay folder ({exc.strerror or exc})") from None
        self.written = 0

    def __enter__(self) -> "OverlayFolder":
        return self

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    def add(self, name: str, image: np.ndarray) -> None:
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise OverlayFolderError(f"{name}: PNG encoding failed")
        (self.staging / name).write_bytes(data.tobytes())
        self.written += 1

    def commit(self) -> None:
        """Swap the staged folder in for the target (the old one is removed after the swap)."""
        (self.staging / MARKER).write_text("full-size overlays written by python -m review; replaced on each run\n")
        os.chmod(self.staging, 0o755)  # mkdtemp makes it 0700
        old = None
        try:
            if self.target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
                os.rmdir(old)
                os.replace(self.target, old)
            os.replace(self.staging, self.target)
        except OSError as exc:
            if old is not None and old.exists() and not self.target.exists():
                os.replace(old, self.target)
            raise OverlayFolderError(f"{self.target}: cannot replace the overlay folder ({exc.strerror or exc})") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        log.info("overlays written: %s (%d images)", self.target, self.written)
