"""The output folder: built beside the target, then swapped in whole.

An existing model folder is replaced only after the new one is complete; a
failed export leaves it untouched. A non-empty folder that is not a model
folder (no manifest.json) is never replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from exporter.errors import OutputFolderError, OutputFolderRefused
from contract.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


def check_target(out_dir: Path) -> None:
    """Refuse targets that are files or non-empty folders that are not model folders."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderRefused(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise OutputFolderRefused(f"{out_dir}: not empty and not a model folder (no {MANIFEST_NAME}); refusing to replace it")


@contextlib.contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh sibling folder; on success it replaces ``out_dir``, on failure it is removed."""
    out_dir = Path(out_dir).absolute()
    check_target(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    except OSError as exc:
        raise OutputFolderError(f"{out_dir}: cannot write the output folder ({exc.strerror or exc})") from None
    try:
        yield staging
        _swap_in(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out_dir: Path) -> None:
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700
    old = None
    try:
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.rmdir(old)
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
    except OSError as exc:
        if old is not None and old.exists() and not out_dir.exists():
            os.replace(old, out_dir)  # put the previous folder back
        raise OutputFolderError(f"{out_dir}: cannot replace the output folder ({exc.strerror or exc})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("model folder written: %s", out_dir)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
