"""Where a real batch run's time goes: read, model, write and the bookkeeping, inside ``python -m inference``.

    python -m benchmarks.pipeline_stages --input DIR --weights DIR [--precision fp32 auto ...] [--repeats 3]

Each repeat runs ``inference.cli.main`` in this process (one fresh output folder each, the
precisions alternating so that other load on the machine hits them alike) with the runtime's
own functions wrapped by timers:

- ``read``: ``layouts.pipeline._load`` (file read, decode, resize, normalization; worker threads);
- ``model``: ``layouts.pipeline.infer_batch`` (the engine: ONNX Runtime or a CPU variant; main thread);
- ``write``: ``layouts.pipeline._finish_mask`` (logits to mask, PNG encode, atomic write; workers)
  and ``Results.write_json`` (the three JSON files and the JSON checkpoints);
- bookkeeping, each on its own: the graph hash checks (``sha256_of`` of the engine, in a thread
  beside the session's creation), the output-folder lock (``RunLock.acquire``/``release``), the
  journal (``Journal.start``/``add``/``flush``/``close``), the record spool (``RecordSpool.add``/
  ``ordered``/``close``), the output audit (``audit_outputs``).

Seconds are summed over calls: work in the worker threads overlaps the model, so ``read`` and
``write`` are the cores' cost, not wall time; the bookkeeping runs in the main thread (except the
hash check) and is reported as a share of the run's wall time. Import and start-up are outside.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable
from unittest import mock

#: (module, attribute, stage): what is timed. Attributes of classes are "Class.method".
TIMED = [
    ("inference.layouts.pipeline", "_load", "read"),
    ("inference.layouts.pipeline", "infer_batch", "model"),
    ("inference.layouts.pipeline", "_finish_mask", "write"),
    ("inference.outputs.results", "Results.write_json", "write"),
    ("inference.engines.graph_check", "sha256_of", "hash check"),
    ("inference.bookkeeping.lock", "FolderLock.acquire", "lock"),
    ("inference.bookkeeping.lock", "FolderLock.release", "lock"),
    ("inference.bookkeeping.journal", "Journal.start", "journal"),
    ("inference.bookkeeping.journal", "Journal.add", "journal"),
    ("inference.bookkeeping.journal", "Journal.flush", "journal"),
    ("inference.bookkeeping.journal", "Journal.close", "journal"),
    ("inference.bookkeeping.record_spool", "RecordSpool.add", "spool"),
    ("inference.bookkeeping.record_spool", "RecordSpool.ordered", "spool"),
    ("inference.bookkeeping.record_spool", "RecordSpool.close", "spool"),
    ("inference.layouts.batch", "audit_outputs", "audit"),
]
STAGES = ("read", "model", "write")
BOOKKEEPING = ("hash check", "lock", "journal", "spool", "audit")
MAIN_THREAD_BOOKKEEPING = ("lock", "journal", "spool", "audit")


def _timer(fn: Callable, stage: str, seconds: dict[str, float]) -> Callable:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[stage] += time.perf_counter() - started
    return timed


def instrumented_run(argv: list[str]) -> dict[str, float]:
    """``python -m inference ARGV`` in this process, timed by stage (module docstring); seconds by stage."""
    import importlib

    from inference import cli

    seconds: dict[str, float] = defaultdict(float)
    with ExitStack() as stack:
        for module_name, attribute, stage in TIMED:
            module = importlib.import_module(module_name)
            owner_name, _, name = attribute.rpartition(".")
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, name)  # AttributeError names what moved: update TIMED
            stack.enter_context(mock.patch.object(owner, name, _timer(original, stage, seconds)))
        started = time.perf_counter()
        code = cli.main(argv)
        seconds["wall"] = time.perf_counter() - started
    if code not in (0, 3):
        raise RuntimeError(f"python -m inference {' '.join(argv)} exited with {code}")
    return dict(seconds)


def measure(input_dir: Path, weights: Path, precisions: list[str], repeats: int, batch_size: int = 8) -> dict:
    """{precision: {stage: median seconds}} over ``repeats`` alternating runs."""
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="pipeline-stages-") as scratch:
        for repeat in range(repeats):
            for precision in precisions:
                out = Path(scratch) / f"{precision}-{repeat}"
                argv = ["--input", str(input_dir), "--output", str(out), "--weights", str(weights),
                        "--device", "cpu", "--precision", precision, "--batch-size", str(batch_size)]
                runs[precision].append(instrumented_run(argv))
                shutil.rmtree(out, ignore_errors=True)
    keys = ("wall", *STAGES, *BOOKKEEPING)
    return {p: {k: statistics.median(r.get(k, 0.0) for r in rs) for k in keys} for p, rs in runs.items()}


def markdown(figures: dict[str, dict[str, float]], images: int) -> str:
    """One row per precision: wall, the stages' seconds (and ms per image), bookkeeping and its share."""
    lines = ["| precision | wall s | read s | model s | write s | hash check s (thread) | lock s | journal s | "
             "spool s | audit s | lock + journal + spool + audit, share of wall |", "|---|" + "---:|" * 10]
    for precision, f in figures.items():
        book = sum(f[k] for k in MAIN_THREAD_BOOKKEEPING)
        lines.append(f"| {precision} | {f['wall']:.2f} | " + " | ".join(f"{f[k]:.2f}" for k in STAGES) + " | "
                     + " | ".join(f"{f[k]:.3f}" for k in BOOKKEEPING) + f" | {book:.3f} s ({100 * book / f['wall']:.1f} %) |")
    lines.append(f"\n{images} images; seconds are medians over the repeats, summed over calls (read and write run in "
                 "worker threads beside the model; the hash check in a thread while each graph's session is made, "
                 "so its wall cost is what --no-verify-hashes saves, not this sum).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pipeline_stages", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=Path, required=True, help="input folder (challenge layout)")
    p.add_argument("--weights", type=Path, required=True, help="model folder")
    p.add_argument("--precision", nargs="+", default=["fp32", "auto"], help="precisions, alternated (default fp32 auto)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from contract.csv_layout import input_rows

    figures = measure(args.input, args.weights, args.precision, args.repeats, args.batch_size)
    print(markdown(figures, len(input_rows(args.input))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
