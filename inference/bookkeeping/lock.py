"""One run per output folder: an exclusive ``flock`` on ``OUTPUT/.fmc-run.lock``.

The lock file holds the owner's pid, host and start time, so a second run can say whose
run holds the folder. The kernel drops the lock when its process ends, however it ends
(a SIGKILL, a crash): a stale file never blocks a later run. The file is removed when
the run ends normally, so the output folder holds only outputs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from contract.atomic import remove_stale_temporaries
from inference.errors import FatalError

log = logging.getLogger(__name__)

LOCK_NAME = ".fmc-run.lock"


class RunLock:
    """``with RunLock(output_dir):`` holds the folder for this run (FatalError if another run holds it)."""

    def __init__(self, output_dir: Path, tag: str | None = None):
        """``tag``: a shard's name; shards of one run share the output folder, each with its own lock."""
        self.path = Path(output_dir) / (LOCK_NAME if tag is None else f".fmc-run.{tag}.lock")
        self.shared = tag is not None
        self.fd: int | None = None

    def _owner(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "another run"
        return (f"run pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
                f"started {info.get('started', '?')}")

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise FatalError(f"cannot create the lock file {self.path} ({exc.strerror or exc}); remove it "
                                 "if it is a symbolic link, or choose another --output") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise FatalError(f"output folder {self.path.parent} is in use by another {self._owner()} "
                                 f"(lock {self.path}); wait for it to end or choose another --output") from None
            try:  # the file may have been removed by its previous owner between our open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        if self.shared:  # other shards may be writing their temporaries right now
            return self
        removed = remove_stale_temporaries(self.path.parent)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run (e.g. %s)", len(removed), removed[0])
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
