"""Writing outputs: atomically (temporary file in the same folder, then ``os.replace``),
and only inside the output folder (``OutputGuard``).

A crash at any moment leaves either the previous file or none, never a truncated one.
Paths are checked twice: when a row is read (``OutputGuard.resolve``) and when its file
is written (``OutputGuard.write_bytes``: folders opened one by one from the output
folder's descriptor without following symbolic links, so a link planted mid-run cannot
redirect a write). A write that fails (a full disk, a link) raises ``OutputWriteError``
naming the file and, for a full disk, the bytes it needed.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import threading
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from contract.atomic import TEMP_PATTERN, Chunks, Data, UnsafePathError, atomic_write_under
from contract.atomic import atomic_write_bytes as _atomic_write_bytes
from contract.kinds import PREDICTION_FILES, Record
from inference.errors import OutputPathError


#: The run's own files: the three JSON files and the shards' parts folder at the top of the output folder,
#: and every name starting with ``RUN_PREFIX`` (lock, journal, record spool, write probe) or a temporary's.
#: A row's mask_path may name none of them (``OutputGuard.mask_target``).
PART_FOLDER = "shards"
RUN_PREFIX = ".fmc-"
TOP_LEVEL_FILES = frozenset(PREDICTION_FILES.values()) | {PART_FOLDER}
WRITE_PROBE_BYTES = 64 * 1024  # written (and fsynced) at start-up, so a full disk is caught before the run
RESUME = "run again with --resume"  # what finishes a batch run whose file could not be written


class OutputWriteError(OSError):
    """An output file could not be written (full disk, symbolic link, permissions); others go on."""


def write_error(target: Path | str, size: int, exc: OSError, retry: str = RESUME) -> OutputWriteError:
    """One line for a failed write: the file, the bytes it needed and why; for a full disk, ``retry``: what
    finishes the job once space is freed."""
    if isinstance(exc, OutputWriteError):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        needed = f"{size} bytes needed" if size > 0 else "more space needed"
        text = f"{target}: {reason}; {needed} (free some space, then {retry})"
    elif isinstance(exc, UnsafePathError):
        text = f"{target}: not written: {exc.strerror or exc}"
    else:
        text = f"{target}: cannot write {size} bytes: {exc.strerror or exc}"
    error = OutputWriteError(text)
    error.errno = exc.errno
    return error


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class OutputGuard:
    """Resolves output paths and refuses any outside the output folder or inside the input folder."""

    def __init__(self, output_dir: Path, input_dir: Path | None = None):
        self.root = Path(output_dir).resolve()
        self.input_root = Path(input_dir).resolve() if input_dir is not None else None
        self._root_text = str(self.root).rstrip("/")  # "" for the root folder itself
        self._input_text = str(self.input_root).rstrip("/") if self.input_root is not None else None
        self._root_fd: int | None = None
        self._lock = threading.Lock()

    def _root_descriptor(self) -> int:
        """The output folder, opened once (created if missing); later writes walk down from it."""
        with self._lock:
            if self._root_fd is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
            return self._root_fd

    def close(self) -> None:
        with self._lock:
            if self._root_fd is not None:
                os.close(self._root_fd)
                self._root_fd = None

    def write_bytes(self, target: Path, data: Data, durable: bool = False, retry: str = RESUME) -> Path:
        """Write ``data`` atomically at ``target`` (inside the output folder), never through a symbolic link."""
        target = Path(target)
        try:
            parts = target.relative_to(self.root).parts
        except ValueError:
            raise OutputWriteError(f"{target}: not inside the output folder {self.root}; not written") from None
        try:
            atomic_write_under(self._root_descriptor(), parts, data, durable=durable)
        except OSError as exc:
            raise write_error(target, len(data), exc, retry) from exc
        return target

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
        """The CSV's ``mask_path`` with its leading ``../`` and ``./`` parts removed, under the output folder.

        String work only (about 5 us, where ``resolve`` costs a file-system call per folder): the path is
        normalized, and may not leave the output folder, enter the input folder or name the run's own files
        (``TOP_LEVEL_FILES``, ``RUN_PREFIX``, temporaries). A symbolic link inside the output folder is refused
        when the file is written (``write_bytes``)."""
        text = mask_path.replace("\\", "/")
        if text.startswith("/"):
            raise OutputPathError(f"mask_path {mask_path!r} is absolute; expected a path relative to csv_files/")
        parts = text.split("/")
        first = 0
        while first < len(parts) and parts[first] in ("..", ".", ""):
            first += 1
        relative = posixpath.normpath("/".join(parts[first:])) if first < len(parts) else "."
        if relative == ".":
            raise OutputPathError(f"mask_path {mask_path!r} names no file")
        if relative == ".." or relative.startswith("../"):
            raise OutputPathError(f"output path {mask_path!r} escapes the output folder {self.root}")
        names = relative.split("/")
        own = [name for name in names if name.startswith(RUN_PREFIX) or TEMP_PATTERN.match(name)]
        if names[0] in TOP_LEVEL_FILES or own:
            raise OutputPathError(f"mask_path {mask_path!r} names {own[0] if own else names[0]}, a file of the "
                                  "run itself (its JSON files, shard parts, lock, journal or temporaries); "
                                  "choose another mask_path")
        target = f"{self._root_text}/{relative}"
        if self._input_text is not None and (target + "/").startswith(self._input_text + "/"):
            raise OutputPathError(f"output path {mask_path!r} would lie inside the input folder {self.input_root}")
        return Path(target)


def _write(target: Path, data: Data, guard: OutputGuard | None, durable: bool = False, retry: str = RESUME) -> Path:
    if guard is not None:
        return guard.write_bytes(target, data, durable=durable, retry=retry)
    try:
        _atomic_write_bytes(Path(target), data, durable=durable)
    except OSError as exc:
        raise write_error(target, len(data), exc, retry) from exc
    return Path(target)


def json_bytes(records: Sequence[Record | dict]) -> bytes:
    """Records (validated, or their ``model_dump(mode="json")``) -> the JSON file's bytes."""
    payload = [r if isinstance(r, dict) else r.model_dump(mode="json") for r in records]
    return (json.dumps(payload, indent=1, allow_nan=False) + "\n").encode("utf-8")


def record_text(record: Record | dict) -> bytes:
    """One record as it stands inside its JSON file (``json_bytes``): indented one level, no separator."""
    payload = record if isinstance(record, dict) else record.model_dump(mode="json")
    return (" " + json.dumps(payload, indent=1, allow_nan=False).replace("\n", "\n ")).encode("utf-8")


def json_chunks(texts: Iterable[bytes], count: int, text_bytes: int | None, piece: int = 1 << 20) -> Chunks:
    """A JSON file streamed from its records' ``record_text`` (``count`` of them, ``text_bytes`` in all,
    None when not known: the size is then unknown too), byte for byte ``json_bytes`` of the same
    records, in pieces of about ``piece`` bytes."""
    if count == 0:
        return Chunks([b"[]\n"], 3)

    def parts() -> Iterator[bytes]:
        yield b"[\n"
        for number, text in enumerate(texts):
            if number:
                yield b",\n"
            yield text
        yield b"\n]\n"

    return Chunks(parts(), 0 if text_bytes is None else 2 + text_bytes + 2 * (count - 1) + 3, piece)


def write_json_records(target: Path, records: Sequence[Record | dict] | Chunks,
                       guard: OutputGuard | None = None, retry: str = RESUME) -> Path:
    """Validated records (or a streamed file, ``json_chunks``) -> a JSON list, written atomically."""
    data = records if isinstance(records, Chunks) else json_bytes(records)
    return _write(Path(target), data, guard, durable=True, retry=retry)


def encode_png(mask: np.ndarray) -> bytes:
    """H x W uint8 class indices -> PNG bytes (single channel, 8-bit)."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask must be H x W uint8, got {mask.dtype} {mask.shape}")
    ok, buffer = cv2.imencode(".png", mask)
    if not ok:
        raise OSError("OpenCV could not encode the mask as PNG")
    return buffer.tobytes()


def write_mask(target: Path, mask: np.ndarray, guard: OutputGuard | None = None) -> Path:
    """Write a mask PNG atomically at ``target`` (already checked by ``OutputGuard``; ``guard`` re-checks)."""
    return _write(Path(target), encode_png(mask), guard)


def check_writable(output_dir: Path, probe_bytes: int = WRITE_PROBE_BYTES) -> None:
    """Create the output folder and prove ``probe_bytes`` can be written there (OSError otherwise).

    The probe is written and fsynced, then removed: a disk already full fails here, before any work.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    probe = output_dir / f".fmc-write-test.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            block = memoryview(b"\0" * probe_bytes)
            while block:
                block = block[os.write(fd, block):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(probe.parent, probe_bytes, exc) from exc
    finally:
        probe.unlink(missing_ok=True)

