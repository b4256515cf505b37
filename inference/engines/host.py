"""What the host offers a run, asked with the standard library only (``cli.run`` asks before its heavy imports):
the CPU threads this process may use, and whether an NVIDIA device node is there."""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path


def gpu_device_visible() -> bool:
    """Whether an NVIDIA device node exists (``/dev/nvidiactl`` or ``/dev/nvidiaN``): the cheapest GPU hint."""
    return Path("/dev/nvidiactl").exists() or bool(glob.glob("/dev/nvidia[0-9]*"))


def default_threads() -> int:
    """CPU threads this process may use: the cgroup quota if set, else the CPUs it may run on."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(available, quota) if quota else available)


def _cgroup_cpus() -> int | None:
    with contextlib.suppress(OSError, ValueError):  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, -(-int(quota) // int(period)))
    with contextlib.suppress(OSError, ValueError):  # cgroup v1
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return max(1, -(-quota_us // period_us))
    return None
