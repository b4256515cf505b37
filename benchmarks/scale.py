"""Many rows: peak memory against the number of rows, and rows/s of one process, two shards and Ray.

    python -m benchmarks.scale memory --rows 1000 10000 100000 [--weights DIR | --tiny] [--shards] [--reference DIR]
                                      [--kind segmentation]
    python -m benchmarks.scale throughput --rows 200 800 [--weights DIR | --tiny]

Input: classification rows only (the model's classification tasks in turn; ``memory --kind
segmentation``: segmentation rows, each writing a mask), cycling over
64 distinct 32x32 PNG images (seeded noise), in one CSV of the challenge layout, made
under ``--work`` (default ``data/bench/scale``). Every run is a fresh process measured by
``benchmarks.measure`` (wall time from process start to exit, peak RSS of the largest
process); each run's record count is checked.

``memory``: ``python -m inference`` at each row count; peak RSS should stay flat. With
``--shards``, also the two shards of a ``--shard I/2`` split (run at once) and their
``merge`` (checked equal to the single run), each with its peak RSS. With ``--reference
DIR`` (a checkout of another version, e.g. ``git worktree add ../before COMMIT``), the
same run in DIR first at each row count: outputs compared, wall and peak RSS ratios.

``throughput``: at each row count, (a) one process (2 ONNX Runtime threads), (b) two
shards at once (``--shard 0/2`` and ``1/2``, 1 thread each) then ``python -m inference
merge``, (c) ``python -m inference.scale.ray_job --actors 2`` (a local Ray instance, 1 CPU and
1 thread per actor). Outputs of (b) and (c) must equal (a) byte for byte. With two row
counts the wall times are fitted as ``fixed + per_row * rows``: the fixed part is
start-up (interpreter, model, Ray), the per-row part the steady cost; the overhead per
row of a path is its per-row cost minus the single process's.

``--tiny``: a small random-weight model (mobilenet_v2, 64x64 input, all 27 tasks,
exported once under ``--work``), for row counts the default model is too slow for on a
small machine; what is measured (the pipeline's bookkeeping per row) does not depend on it.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from benchmarks.measure import Measurement, measure
from contract.kinds import spec_of
from contract.manifest import ModelFolder
from contract.tasks import TaskKind

log = logging.getLogger("benchmarks.scale")
REPO = Path(__file__).resolve().parent.parent
IMAGES = 64
IMAGE_SIZE = 32
JSON_FILE = "classification_predictions.json"


def make_input(root: Path, rows: int, model_dir: Path, kind: str = "classification") -> Path:
    """``root/csv_files/rows.csv`` with ``rows`` rows of ``kind`` (the model's tasks of that kind in turn) over
    ``IMAGES`` tiny images; segmentation rows write their masks to ``OUT/masks/TASK/N.png``."""
    manifest = ModelFolder.open(model_dir).manifest
    tasks = [t for t in manifest.tasks if t.kind is TaskKind.parse(kind)]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "csv_files").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        target = root / "images" / f"img_{i:03d}.png"
        if not target.is_file():
            cv2.imwrite(str(target), rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8))
    with (root / "csv_files" / "rows.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "task_id", "task_name", "num_classes", "mask_path"])
        for i in range(rows):
            task = tasks[i % len(tasks)]
            mask = f"../masks/{task.task_id}/{i:07d}.png" if spec_of(task.kind).writes_mask else ""
            writer.writerow([f"../images/img_{i % IMAGES:03d}.png", task.task_id, kind, task.num_classes, mask])
    return root


def tiny_model(work: Path) -> Path:
    """A small exported model (random weights, seed 0), made once under ``work``."""
    out = work / "tiny-model"
    if (out / "manifest.json").is_file():
        return out
    import torch

    from contract.manifest import ModelConfig, Preprocessing
    from contract.tasks import TaskRegistry
    from exporter import export_model
    from network import build_model

    torch.manual_seed(0)
    config = ModelConfig(encoder_name="mobilenet_v2", params={"pyramid_channels": 64, "segmentation_channels": 32},
                         tasks=list(TaskRegistry.official()), preprocessing=Preprocessing(input_size=(64, 64)))
    export_model(build_model(config).eval(), out, source={"checkpoint": "benchmarks.scale tiny (random, seed 0)"})
    return out


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "inference", *map(str, args)]


def _outputs(out: Path) -> int:
    """The predictions in ``out``: records of the JSON file, plus mask PNGs."""
    masks = sum(1 for _ in (out / "masks").rglob("*.png")) if (out / "masks").is_dir() else 0
    return len(json.loads((out / JSON_FILE).read_text())) + masks


def _check(out: Path, rows: int, run: Measurement, what: str) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"{what} exited {run.returncode}; see {run.log_file}")
    found = _outputs(out)
    if found != rows:
        raise RuntimeError(f"{what}: {found} predictions for {rows} rows; see {run.log_file}")


def run_memory(work: Path, model_dir: Path, counts: list[int], shards: bool = False,
               reference: Path | None = None, kind: str = "classification") -> list[dict]:
    results = []
    for rows in counts:
        label = "" if kind == "classification" else f"{kind}-"
        name = f"{label}{rows}"
        inp, out = make_input(work / f"input-{name}", rows, model_dir, kind), work / f"memory-{model_dir.name}-{name}"
        result: dict = {"rows": rows}
        if reference is not None:  # the same command in the other checkout first, then this one
            ref_out = work / f"memory-reference-{name}"
            ref = measure(_cli("--input", inp, "--output", ref_out, "--weights", model_dir, "--device", "cpu"),
                          work / "logs" / f"memory-reference-{name}.log", cwd=reference)
            _check(ref_out, rows, ref, f"reference run of {rows} rows")
            result.update({"ref_wall_s": ref.wall_s, "ref_peak_rss_mb": ref.peak_rss_largest_mb})
        run = measure(_cli("--input", inp, "--output", out, "--weights", model_dir, "--device", "cpu"),
                      work / "logs" / f"memory-{model_dir.name}-{name}.log")
        _check(out, rows, run, f"memory run of {rows} rows")
        result.update({"wall_s": run.wall_s, "rows_per_s": rows / run.wall_s, "peak_rss_mb": run.peak_rss_largest_mb})
        if reference is not None:
            if not _same(ref_out, out):
                raise RuntimeError(f"{out} differs from the reference's {ref_out}")
            result.update({"wall_ratio": run.wall_s / result["ref_wall_s"],
                           "peak_ratio": run.peak_rss_largest_mb / result["ref_peak_rss_mb"]})
        if shards:
            result.update(_shard_memory(work, model_dir, inp, out, rows, f"memory-{label}"))
        results.append(result)
        log.info("memory: %d rows: %s", rows, ", ".join(f"{k} {v:.1f}" for k, v in result.items() if k != "rows"))
    return results


def _shard_memory(work: Path, model_dir: Path, inp: Path, single: Path, rows: int, prefix: str) -> dict[str, float]:
    """Peak RSS of a shard (``--shard I/2``, the two at once) and of ``merge``; the merge must equal ``single``."""
    base = ["--input", inp, "--weights", model_dir, "--device", "cpu", "--threads", "1"]
    runs, merge, merged = _shards_and_merge(work, base, rows, prefix)
    if not _same(single, merged):
        raise RuntimeError(f"{merged} differs from the single process's")
    return {"shard_peak_rss_mb": max(r.peak_rss_largest_mb for r in runs), "merge_s": merge.wall_s,
            "merge_peak_rss_mb": merge.peak_rss_largest_mb}


def _shards_and_merge(work: Path, base: list, rows: int, prefix: str) -> tuple[list[Measurement], Measurement, Path]:
    """``--shard 0/2`` and ``1/2`` at once (``base``: the rest of the command line), then ``merge``."""
    logs = work / "logs"
    folders = [work / f"{prefix}shard{i}-{rows}" for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda i: measure(_cli(*base, "--output", folders[i], "--shard", f"{i}/2"),
                                               logs / f"{prefix}shard{i}-{rows}.log"), range(2)))
    if any(r.returncode for r in runs):
        raise RuntimeError(f"a shard failed; see {[r.log_file for r in runs]}")
    merged = work / f"{prefix}merged-{rows}"
    merge = measure(_cli("merge", *folders, "--output", merged), logs / f"{prefix}merge-{rows}.log")
    _check(merged, rows, merge, "merge")
    return runs, merge, merged


def _same(a: Path, b: Path) -> bool:
    """The JSON file and every mask equal, byte for byte."""
    masks = sorted(p.relative_to(a).as_posix() for p in (a / "masks").rglob("*.png")) if (a / "masks").is_dir() else []
    return filecmp.cmp(a / JSON_FILE, b / JSON_FILE, shallow=False) and all(
        filecmp.cmp(a / m, b / m, shallow=False) for m in masks)


def run_paths(work: Path, model_dir: Path, rows: int) -> dict[str, float]:
    """Wall time of each path on ``rows`` rows (outputs checked against the single process)."""
    inp = make_input(work / f"input-{rows}", rows, model_dir)
    base = ["--input", inp, "--weights", model_dir, "--device", "cpu"]
    logs = work / "logs"
    single = work / f"single-{rows}"
    run = measure(_cli(*base, "--output", single, "--threads", "2"), logs / f"single-{rows}.log")
    _check(single, rows, run, "single process")
    walls = {"single": run.wall_s}

    started = time.perf_counter()
    _, merge, merged = _shards_and_merge(work, [*base, "--threads", "1"], rows, "")
    walls["2 shards + merge"] = time.perf_counter() - started
    walls["merge alone"] = merge.wall_s

    ray_out = work / f"ray-{rows}"
    ray = measure([sys.executable, "-m", "inference.scale.ray_job", *map(str, base), "--output", str(ray_out),
                   "--actors", "2", "--cpus-per-actor", "1", "--threads", "1"], logs / f"ray-{rows}.log")
    _check(ray_out, rows, ray, "Ray job")
    walls["Ray, 2 actors"] = ray.wall_s
    for name, out in (("2 shards + merge", merged), ("Ray, 2 actors", ray_out)):
        if not _same(single, out):
            raise RuntimeError(f"{name}: {out / JSON_FILE} differs from the single process's")
    log.info("throughput: %d rows: %s", rows, ", ".join(f"{k} {v:.1f} s" for k, v in walls.items()))
    return walls


def run_throughput(work: Path, model_dir: Path, counts: list[int]) -> dict:
    walls = {rows: run_paths(work, model_dir, rows) for rows in counts}
    table = []
    for path in ("single", "2 shards + merge", "Ray, 2 actors"):
        row = {"path": path, **{f"rows_per_s@{n}": n / walls[n][path] for n in counts},
               **{f"wall_s@{n}": walls[n][path] for n in counts}}
        if len(counts) >= 2:
            (n1, w1), (n2, w2) = (counts[0], walls[counts[0]][path]), (counts[-1], walls[counts[-1]][path])
            per_row = (w2 - w1) / (n2 - n1)
            row.update({"fixed_s": w1 - per_row * n1, "per_row_ms": 1000 * per_row})
        table.append(row)
    if len(counts) >= 2:
        for row in table:
            row["overhead_per_row_ms"] = row["per_row_ms"] - table[0]["per_row_ms"]
    return {"walls": {str(k): v for k, v in walls.items()}, "table": table}


def markdown(result: dict) -> str:
    lines = []
    if "memory" in result:
        keys = [k for k in result["memory"][0] if k != "rows"]
        lines += ["| rows | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
        lines += [f"| {r['rows']:,} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |" for r in result["memory"]]
    if "throughput" in result:
        table = result["throughput"]["table"]
        keys = [k for k in table[0] if k != "path"]
        lines += ["", "| path | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
        lines += [f"| {r['path']} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |" for r in table]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("memory", "throughput"))
    parser.add_argument("--rows", type=int, nargs="+", required=True, help="row counts")
    parser.add_argument("--weights", type=Path, default=REPO / "model_weights", help="model folder")
    parser.add_argument("--tiny", action="store_true", help="use a small random-weight model (made once)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="memory: another checkout (e.g. a git worktree of an earlier commit) run on the same "
                             "input before each run of this one; outputs compared, ratios given")
    parser.add_argument("--kind", choices=("classification", "segmentation"), default="classification",
                        help="memory: the rows' kind (segmentation rows each write a mask; default: classification)")
    parser.add_argument("--shards", action="store_true",
                        help="memory: also run --shard 0/2 and 1/2 (at once) and merge them, peak RSS of each")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "scale", help="scratch folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = tiny_model(args.work) if args.tiny else args.weights
    result: dict = {"model": str(model_dir), "machine": f"{os.cpu_count()} CPUs", "load_before": os.getloadavg()}
    if args.what == "memory":
        result["memory"] = run_memory(args.work, model_dir, args.rows, shards=args.shards,
                                      reference=args.reference.resolve() if args.reference else None, kind=args.kind)
    else:
        result["throughput"] = run_throughput(args.work, model_dir, sorted(args.rows))
    result["load_after"] = os.getloadavg()
    kind = f"-{args.kind}" if args.what == "memory" and args.kind != "classification" else ""
    name = f"{args.what}{'-tiny' if args.tiny else ''}{kind}-{'-'.join(map(str, args.rows))}.json"
    (args.work / name).write_text(json.dumps(result, indent=1))
    print(markdown(result))
    print(f"\nmodel {model_dir}; load average before {result['load_before']}, after {result['load_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
