#!/usr/bin/env python3
"""Peak memory of one segmentation mask against its pixel count: banded (now) vs whole-image (before).

    python benchmarks/mask_memory.py [--megapixels 4 16] [--classes 2 5] [--source 64]

Each measurement runs in a fresh subprocess: K x S x S float32 logits are made, the
peak resident set is reset (``/proc/self/clear_refs``), the mask is computed, and the
growth of the peak (``VmHWM``) over the resident set before the call is reported, in
MiB and in bytes per output pixel. ``banded`` is ``contract.kinds.segmentation_mask``;
``whole`` is the former implementation (one ``cv2.resize`` of every class channel at
full resolution, then an int64 ``argmax``), kept here for the comparison, run with IPP
off (with IPP, which some OpenCV wheels use for some sizes, ``cv2.resize`` rounds
differently, a few near-tie pixels in millions). The uint8 mask
itself (1 byte per pixel) is part of both. Prints a markdown table (Linux only).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import cv2
import numpy as np
from contract.kinds.segmentation import segmentation_mask

def whole(logits, size):
    height, width = size
    classes = logits.shape[0]
    if classes <= 2:
        diff = logits[0] if classes == 1 else logits[1] - logits[0]
        return (cv2.resize(diff, (width, height), interpolation=cv2.INTER_LINEAR) > 0).astype(np.uint8)
    hwc = np.ascontiguousarray(logits.transpose(1, 2, 0))
    resized = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.argmax(resized.reshape(height, width, classes), axis=2).astype(np.uint8)

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

cv2.ipp.setUseIPP(False)  # OpenCV's generic bilinear: what the bands reproduce bit for bit
impl, classes, source, height, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
logits = np.random.default_rng(0).standard_normal((classes, source, source)).astype(np.float32)
segmentation_mask(logits, (32, 32)); whole(logits, (32, 32))  # warm up: libraries loaded, pools made
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status("VmRSS")
started = time.perf_counter()
mask = (segmentation_mask if impl == "banded" else whole)(logits, (height, width))
seconds = time.perf_counter() - started
print(json.dumps({"peak": status("VmHWM") - before, "seconds": seconds, "sum": int(mask.sum(dtype=np.int64))}))
"""


def measure(impl: str, classes: int, source: int, height: int, width: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, impl, str(classes), str(source), str(height), str(width)],
                          cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise SystemExit(f"{impl} K={classes} {height}x{width} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[4.0, 16.0])
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--source", type=int, default=64, help="logits' height and width (the model's input size)")
    args = parser.parse_args(argv)
    print(f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    print("| K | image | MP | before: peak MiB | B/px | s | now (bands): peak MiB | B/px | s | same mask |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for classes in args.classes:
        for megapixels in args.megapixels:
            side = int(math.sqrt(megapixels * 1e6))
            height, width = side, int(megapixels * 1e6 // side)
            pixels = height * width
            old = measure("whole", classes, args.source, height, width)
            new = measure("banded", classes, args.source, height, width)
            print(f"| {classes} | {height} x {width} | {pixels / 1e6:.1f} | {old['peak'] / 2**20:.0f} | "
                  f"{old['peak'] / pixels:.1f} | {old['seconds']:.2f} | {new['peak'] / 2**20:.0f} | "
                  f"{new['peak'] / pixels:.2f} | {new['seconds']:.2f} | {old['sum'] == new['sum']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
