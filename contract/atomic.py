"""Writing a file atomically: a temporary file beside the target, then ``os.replace``.

A crash leaves the previous file or none, never a truncated one. The file gets the
permissions an ordinary ``open()`` would give (0666 less the umask), not mkstemp's
owner-only 0600: outputs are read by other users (the platform, a container's host).

``atomic_write_under`` also cannot leave a folder at write time: it walks from an open
folder descriptor one component at a time, each opened with ``O_NOFOLLOW``, and creates,
writes and renames the temporary file relative to the last descriptor. A symbolic link
planted anywhere below the root after the run started makes the write fail
(``UnsafePathError``); nothing is written through it.

Temporary names are ``.NAME.XXXXXXXX.tmp`` (``TEMP_PATTERN``), so a later run can
remove the ones a killed run left (``remove_stale_temporaries``).
No heavy imports: the manifest, the phantom generator and the evaluator use it too.
"""

from __future__ import annotations

import errno
import logging
import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

log = logging.getLogger(__name__)

#: Temporary files of these writers (and of ``tempfile.mkstemp`` with the same prefix and suffix).
TEMP_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(OSError):
    """A folder on the way to an output is a symbolic link (or not a folder): nothing was written."""


class Chunks:
    """A file's bytes made piece by piece (a large JSON file streamed), with their total size known ahead.

    Every writer here takes ``Chunks`` where it takes ``bytes``: ``len()`` is the size (for the
    "N bytes needed" of a full disk; 0 when it is not known ahead). Iterating yields the parts, once,
    gathered into writes of about ``piece`` bytes (parts may be as small as a separator).
    """

    def __init__(self, parts: Iterable[bytes], size: int = 0, piece: int = 1 << 20):
        self._parts, self.size, self.piece = parts, size, piece

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        buffer = bytearray()
        for part in self._parts:
            buffer += part
            if len(buffer) >= self.piece:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)


Data = Union[bytes, Chunks]


def _write_all(handle, data: Data) -> None:
    if isinstance(data, Chunks):
        for piece in data:
            handle.write(piece)
    else:
        handle.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: Path, data: Data, durable: bool = False) -> Path:
    """Write ``data`` to ``target`` atomically (parents created); ``durable`` also fsyncs."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_all(handle, data)
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(target: Path, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def open_folder_under(root_fd: int, parts: Sequence[str], create: bool = True) -> int:
    """A new descriptor of folder ``root/parts...``, no component followed if it is a symbolic link."""
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            if part in ("", ".", "..") or "/" in part:
                raise UnsafePathError(f"{'/'.join(parts)}: {part!r} is not a plain folder name")
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = "/".join(parts[:index + 1])
                    raise UnsafePathError(exc.errno, f"{where} is a symbolic link or not a folder; "
                                                     "nothing is written through it") from exc
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write_under(root_fd: int, parts: Sequence[str], data: Data, durable: bool = False) -> None:
    """Write ``data`` atomically at ``root/parts...`` (folders created), never through a symbolic link."""
    if not parts:
        raise UnsafePathError("no file name to write")
    folder = open_folder_under(root_fd, parts[:-1])
    name = parts[-1]
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, _NEW_FILE_FLAGS, 0o666, dir_fd=folder)  # the umask applies, as for open()
        try:
            with os.fdopen(fd, "wb") as handle:
                _write_all(handle, data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
            raise
        if durable:
            os.fsync(folder)
    finally:
        os.close(folder)


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Remove ``.NAME.XXXXXXXX.tmp`` files under ``root`` (symbolic links neither followed nor removed)."""
    removed: list[Path] = []
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(folder) / name
            if TEMP_PATTERN.match(name) and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):  # another process may have removed it
                    path.unlink()
                    removed.append(path)
    return removed
