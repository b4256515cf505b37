"""What fingerprinting an image for ``--resume`` costs: its size and modification time (``os.stat``, what the
journal keeps) against a hash of its content (sha256), beside reading the image (``read_image``: decoding).

    python -m benchmarks.image_fingerprint [--input test/input] [--repeat 7] [--cold]

Every distinct image the input's CSVs name is timed ``--repeat`` times each way: with the file in the
page cache (warm: the cheapest a content hash can be), or with ``--cold`` evicted from it before each
timing (``posix_fadvise(DONTNEED)`` on that file alone: what a resume after a reboot, or on another
machine, pays). Prints one line per way: the median per image, the total for the input, and the
share of the decoding time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from pathlib import Path
from typing import Callable

from contract.imaging import read_image
from inference.layouts.batch_rows import InputRows


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (only this file's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def time_each(paths: list[Path], what: Callable[[Path], object], repeat: int, cold: bool = False) -> list[float]:
    """The median seconds of ``what`` per path."""
    medians = []
    for path in paths:
        times = []
        for _ in range(repeat):
            if cold:
                evict(path)
            started = time.perf_counter()
            what(path)
            times.append(time.perf_counter() - started)
        medians.append(statistics.median(times))
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.image_fingerprint",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=Path("test/input"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cold", action="store_true", help="evict each file from the page cache before each timing")
    args = parser.parse_args(argv)
    rows = InputRows.scan(args.input)
    paths = sorted({row.image_file for row in rows if row.image_file.is_file()})
    sizes = [p.stat().st_size for p in paths]
    print(f"{len(paths)} images ({len(rows)} rows), {sum(sizes) / 1e6:.2f} MB, "
          f"median {statistics.median(sizes) / 1e3:.1f} kB; {'cold' if args.cold else 'warm'} page cache, "
          f"median of {args.repeat}")
    ways = {"stat (size, mtime)": os.stat, "sha256 of the content": _sha256, "read_image (decode)": read_image}
    results = {name: time_each(paths, what, args.repeat, args.cold) for name, what in ways.items()}
    decode = sum(results["read_image (decode)"])
    for name, medians in results.items():
        total = sum(medians)
        print(f"{name:24s} {1e6 * statistics.median(medians):9.1f} us per image, {1e3 * total:8.2f} ms in all, "
              f"{100 * total / decode:6.1f} % of decoding")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
