"""One lock per output folder, taken by every kind of run: ``OUTPUT/.fmc-run.lock`` (``flock``).

Who may share a folder:

- a whole run (``python -m inference`` without ``--shard``, a Grand-Challenge case, the Ray job,
  ``python -m inference merge``) holds it alone: an exclusive lock;
- the shards of one job (``--shard I/N`` with the same N, inputs, model and options) share it: each
  holds a shared lock on ``.fmc-run.lock`` and an exclusive one on its own
  ``.fmc-run.part-IIII-of-NNNN.lock``, which names its job. A shard that finds a live shard of
  another job is refused, and so is a second process of the same shard.

A run that is refused exits 1 naming the holder (what it is, pid, host, start time). The kernel
drops a lock when its process ends, however it ends (a SIGKILL, a crash): a stale file never
blocks a later run. Lock files are removed when their last holder ends normally.

Temporary files (``contract.atomic``: ``.NAME.XXXXXXXX.tmp``) are removed only by a run that
holds the folder alone, so never while another run may be writing them: a killed run's
temporaries go when the next whole run, or the merge, starts.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from contract.atomic import remove_stale_temporaries
from inference.errors import FatalError

log = logging.getLogger(__name__)

LOCK_NAME = ".fmc-run.lock"
SHARD_LOCK_GLOB = ".fmc-run.part-*.lock"
WAIT_SECONDS = 1.0  # a lock held for a moment (another run starting, probing or ending) is retried this long
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Holder:
    """Who takes the folder: ``what`` names it in messages; a shard also has its ``tag`` and ``job``."""

    what: str  # "run", "merge", "Grand-Challenge case", "Ray job", "shard 0/4"
    tag: str | None = None  # a shard's tag (part-IIII-of-NNNN): its own lock file
    job: str | None = None  # a shard's job: what shards sharing the folder must have in common

    @property
    def shared(self) -> bool:
        return self.tag is not None


def _describe(info: dict) -> str:
    job = f" of job {info['job']}" if info.get("job") else ""
    return (f"{info.get('what', 'run')}{job} (pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
            f"started {info.get('started', '?')})")


def _read_info(fd: int) -> dict:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _take(path: Path, mode: int, wait: float = WAIT_SECONDS) -> int | None:
    """``path`` opened and flocked (``mode``: LOCK_SH or LOCK_EX); None when others hold it after ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            raise FatalError(f"cannot create the lock file {path} ({exc.strerror or exc}); remove it if it is a "
                             "symbolic link, or choose another --output") from exc
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        try:  # the file may have been removed by its last holder between our open and flock
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _write_info(fd: int, holder: Holder) -> None:
    info = {"what": holder.what, "job": holder.job, "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = (json.dumps(info) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)  # one write: a reader sees nothing or all of it


def _try_lock(fd: int, mode: int) -> bool:
    """``flock`` without waiting: True when taken, False when another process holds the file."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def live_shards(folder: Path) -> list[dict]:
    """What the shards holding ``folder`` now say of themselves (their lock files' contents)."""
    found = []
    for path in sorted(Path(folder).glob(SHARD_LOCK_GLOB)):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # removed by its holder meanwhile, or not a plain file
        try:
            if _try_lock(fd, fcntl.LOCK_SH):
                continue  # nobody holds it: a shard that was killed
            info: dict = {}
            deadline = time.monotonic() + WAIT_SECONDS
            while not info and time.monotonic() < deadline:  # a shard starting writes its info right after locking
                info = _read_info(fd)
                if not info:
                    time.sleep(0.02)
            found.append(info or {"what": f"a shard ({path.name})"})
        finally:
            os.close(fd)
    return found


def folder_in_use(folder: Path) -> str | None:
    """Who holds ``folder`` now (without taking it), or None when nobody does."""
    path = Path(folder) / LOCK_NAME
    try:  # read-only: the folder may be a read-only shard output that a merge reads from
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file (or not a plain one): nobody holds the folder
    try:
        if _try_lock(fd, fcntl.LOCK_EX):
            return None
    finally:
        os.close(fd)
    shards = live_shards(folder)
    if shards:
        more = f" and {len(shards) - 3} more" if len(shards) > 3 else ""
        return ", ".join(_describe(info) for info in shards[:3]) + more
    try:
        with path.open("rb") as handle:
            return _describe(_read_info(handle.fileno()))
    except OSError:
        return "run"


class FolderLock:
    """``with FolderLock(output_dir, holder):`` the folder held for this run (FatalError naming any other holder)."""

    def __init__(self, output_dir: Path, holder: Holder):
        self.folder, self.holder = Path(output_dir), holder
        self.path = self.folder / LOCK_NAME
        self.own_path = self.folder / f".fmc-run.{holder.tag}.lock" if holder.shared else None
        self.fd: int | None = None
        self.own_fd: int | None = None

    def _refuse(self, who: str) -> FatalError:
        return FatalError(f"output folder {self.folder} is in use by another {who} (lock {self.path}); wait for it "
                          "to end or choose another --output")

    def acquire(self) -> None:
        self.fd = _take(self.path, fcntl.LOCK_SH if self.holder.shared else fcntl.LOCK_EX)
        if self.fd is None:
            raise self._refuse(folder_in_use(self.folder) or "run")
        if not self.holder.shared:
            _write_info(self.fd, self.holder)
            return
        self.own_fd = _take(self.own_path, fcntl.LOCK_EX)
        if self.own_fd is None:
            who = _read_info_of(self.own_path)
            self.release()
            raise self._refuse(f"{who}: this shard is running already")
        _write_info(self.own_fd, self.holder)
        others = [info for info in live_shards(self.folder) if info.get("job") != self.holder.job]
        if others:
            self.release()
            raise self._refuse(f"{_describe(others[0])}: a shard of another job (other inputs, model, options or "
                               "shard count); the shards of one job share a folder, two jobs do not")

    def release(self) -> None:
        if self.own_fd is not None:
            self.own_path.unlink(missing_ok=True)
            os.close(self.own_fd)
            self.own_fd = None
        if self.fd is None:
            return
        if _try_lock(self.fd, fcntl.LOCK_EX):  # the last holder removes the file; while other shards hold it, it stays
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        if not self.holder.shared:  # alone in the folder: every temporary there is a killed run's
            removed = remove_stale_temporaries(self.folder)
            if removed:
                log.info("removed %d temporary file(s) left by an interrupted run (e.g. %s)", len(removed), removed[0])
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _read_info_of(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return _describe(_read_info(handle.fileno()))
    except OSError:
        return "shard"
