"""Run one pipeline as a subprocess and measure it: wall time, first output, per-kind rate, peak memory.

The pipeline runs under a small wrapper process (``python -m benchmarks.measure``,
standard library only), so that:

- **peak resident memory of the largest process** comes from the wrapper's
  ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the pipeline exited: the largest
  high-water mark among the pipeline's process and every process it waited for
  (DataLoader workers included), untouched by the other pipelines of the run;
- **peak resident memory of the whole tree** is the largest sum of ``VmRSS`` over
  the pipeline's process tree, polled from ``/proc`` every ``POLL_S`` seconds
  (a lower bound: a peak shorter than the interval can be missed);
- **wall time** runs from just before the process is started to its exit:
  interpreter start, imports, model loading and writing the outputs included.

**Time to first output**: both pipelines log ``first predictions ready at unix time
T`` (the runtime at debug level: ``benchmarks.run`` starts both with ``-v``) when the predictions of their first model call are ready (decoded, masks
written); the figure is T minus the wall clock time at which the process was
started. Per task kind, both log ``batch done: TASK KIND N images at unix time T``
(at debug level) after each model call; the **steady rate of a kind** is its images
divided by the time between each of its batches' completion and the previous
completion (the first call, which also pays the start-up, is left out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

POLL_S = 0.1
FIRST = re.compile(r"first predictions ready at unix time ([0-9.]+)")
BATCH = re.compile(r"batch done: (\S+) (\S+) (\d+) images at unix time ([0-9.]+)")


@dataclass
class Measurement:
    command: list[str]
    returncode: int
    wall_s: float
    peak_rss_largest_mb: float
    peak_rss_tree_mb: float
    processes: int
    first_output_s: float | None = None
    kind_images: dict[str, int] = field(default_factory=dict)
    kind_seconds: dict[str, float] = field(default_factory=dict)
    log_file: str = ""

    @property
    def kind_rates(self) -> dict[str, float]:
        return {k: self.kind_images[k] / s for k, s in self.kind_seconds.items() if s > 0}

    @property
    def steady_rate(self) -> float | None:
        """Images per second after the first model call, all kinds together."""
        seconds = sum(self.kind_seconds.values())
        return sum(self.kind_images.values()) / seconds if seconds > 0 else None

    def as_dict(self) -> dict:
        """The figures, JSON-ready; the command as a user would type it (this interpreter shown as ``python``)."""
        command = ["python" if part == sys.executable else part for part in self.command]
        return {**asdict(self), "command": command, "kind_rates": self.kind_rates, "steady_rate": self.steady_rate}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def wrapped(command: list[str], log_file: Path) -> dict:
    """Run ``command`` (stderr and stdout to ``log_file``); the figures ``Measurement`` is made from."""
    with open(log_file, "wb") as log:
        started = time.time()
        clock = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        peak_tree, seen = 0, {process.pid}
        while process.poll() is None:
            pids = _tree(process.pid)
            seen.update(pids)
            peak_tree = max(peak_tree, sum(_rss_kb(pid) for pid in pids))
            time.sleep(POLL_S)
        wall = time.perf_counter() - clock
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB on Linux
    return {"started": started, "wall_s": wall, "returncode": process.returncode,
            "largest_kb": largest, "tree_kb": peak_tree, "processes": len(seen)}


def parse_log(text: str, started: float) -> tuple[float | None, dict[str, int], dict[str, float]]:
    """(time to first output, images per kind, seconds per kind) from a pipeline's log (module docstring)."""
    first = FIRST.search(text)
    batches = sorted((float(m[4]), m[2], int(m[3])) for m in BATCH.finditer(text))
    images: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for (previous, _, _), (now, kind, n) in zip(batches, batches[1:]):
        images[kind] = images.get(kind, 0) + n
        seconds[kind] = seconds.get(kind, 0.0) + (now - previous)
    return (float(first[1]) - started if first else None), images, seconds


def measure(command: list[str], log_file: Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Measurement:
    """Run ``command`` under the wrapper and return its Measurement (the log is kept in ``log_file``).

    ``cwd``: where the command runs (another checkout, for ``python -m inference`` of another version);
    the wrapper is always this file."""
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    figures_file = log_file.with_suffix(".measure.json")
    wrapper = [sys.executable, str(Path(__file__).resolve()), "--figures", str(figures_file),
               "--log", str(log_file), "--", *command]
    subprocess.run(wrapper, check=True, env=env, cwd=cwd)
    figures = json.loads(figures_file.read_text())
    first, images, seconds = parse_log(log_file.read_text(errors="replace"), figures["started"])
    return Measurement(
        command=command, returncode=figures["returncode"], wall_s=figures["wall_s"],
        peak_rss_largest_mb=figures["largest_kb"] / 1024, peak_rss_tree_mb=figures["tree_kb"] / 1024,
        processes=figures["processes"], first_output_s=first, kind_images=images, kind_seconds=seconds,
        log_file=str(log_file),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure",
                                     description="Run a command and write its wall time and peak memory as JSON.")
    parser.add_argument("--figures", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--log", type=Path, required=True, help="the command's stdout and stderr go here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (use: -- COMMAND ...)")
    args.figures.write_text(json.dumps(wrapped(command, args.log)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
