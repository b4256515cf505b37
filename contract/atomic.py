"""One way to write a file atomically: a temporary file beside the target, then ``os.replace``.

A crash leaves the previous file or none, never a truncated one. The file gets the
permissions an ordinary ``open()`` would give (0666 less the umask), not mkstemp's
owner-only 0600: outputs are read by other users (the platform, a container's host).
No heavy imports: the manifest, the phantom generator and the evaluator use it too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: Path, data: bytes, durable: bool = False) -> Path:
    """Write ``data`` to ``target`` atomically (parents created); ``durable`` also fsyncs."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
