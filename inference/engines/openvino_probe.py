"""Can OpenVINO compile and run here? Asked once per process, in a child process that may crash.

OpenVINO 2025.3 to 2026.1 were reported to die with SIGFPE inside ``compile_model`` on some AMD
EPYC (Zen 4) machines. A signal cannot be caught in Python, so the question is asked in a child
(``python -m inference.engines.openvino_probe HINT THREADS``): it compiles a small convolutional
graph (convolution, sigmoid, multiply, global pooling: the operations of EfficientNet's blocks)
with the same CPU properties as the runtime, runs it once, and checks the result against numpy.
The parent reads its exit status: 0 = usable; anything else (a signal, an exception, a wrong
result, no answer within ``PROBE_TIMEOUT_S``) = not usable, with the reason. The answer is kept
for the rest of the process (``probe``), so a run pays for it once, before its first compile.

``start`` launches the child without waiting (the batch layout does so right after the model
folder is opened), so that the child's 0.2-0.3 s run beside the parent's own start-up (imports,
sessions, the CSV files) on another core; ``probe`` then reads its answer. A child still running
when the process ends is killed.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 120.0
_ANSWERS: dict[tuple[str, int], str | None] = {}
_PENDING: dict[tuple[str, int], tuple[subprocess.Popen, float]] = {}  # started, not yet read (start)


def compile_config(hint: str, threads: int) -> dict[str, object]:
    """OpenVINO CPU properties of every compiled graph: one stream, ``threads`` threads, ``hint`` precision.

    Threads are not pinned to cores: image decoding and mask encoding share the same cores. (Defined
    here, standard library only, so that the probe's child imports nothing of the project's but this.)
    """
    return {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}


def probe(hint: str, threads: int) -> str | None:
    """None when OpenVINO compiles and runs correctly at ``hint`` here, else why not (asked once per process;
    the answer of a child launched by ``start`` when there is one)."""
    key = (hint, threads)
    if key not in _ANSWERS:
        pending = _PENDING.pop(key, None)
        _ANSWERS[key] = _answer(*pending) if pending is not None else _ask_child(hint, threads)
    return _ANSWERS[key]


def start(hint: str, threads: int) -> None:
    """Launch the probe's child now, without waiting: ``probe`` reads its answer (nothing when already asked)."""
    key = (hint, threads)
    if key in _ANSWERS or key in _PENDING:
        return
    try:
        child = _spawn(hint, threads)
    except OSError:
        return  # probe() asks again and reports why it cannot
    if not _PENDING:
        atexit.register(stop_pending)
    _PENDING[key] = (child, time.perf_counter())


def stop_pending() -> None:
    """At exit: children never read (the run did not use the variant) are stopped, not left behind."""
    while _PENDING:
        child, _ = _PENDING.popitem()[1]
        if child.poll() is None:
            child.kill()
        child.wait()


def probe_command(hint: str, threads: int) -> list[str]:
    """The child's command line: this module run as a program."""
    return [sys.executable, "-m", "inference.engines.openvino_probe", hint, str(threads)]


def _spawn(hint: str, threads: int) -> subprocess.Popen:
    """The probe's child, started (OSError when it cannot be)."""
    root = str(Path(__file__).resolve().parents[2])  # the child imports this very package, wherever it runs from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen(probe_command(hint, threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)


def _ask_child(hint: str, threads: int) -> str | None:
    try:
        child = _spawn(hint, threads)
    except OSError as exc:
        return f"the OpenVINO probe could not be started: {exc}"
    return _answer(child, time.perf_counter())


def _answer(child: subprocess.Popen, started: float) -> str | None:
    """The child's verdict: None (usable) or why not."""
    waited = time.perf_counter()
    try:
        _, stderr = child.communicate(timeout=max(1.0, PROBE_TIMEOUT_S - (waited - started)))
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return f"the OpenVINO probe did not finish within {PROBE_TIMEOUT_S:.0f} s"
    log.debug("OpenVINO probe: exit %d after %.2f s (%.2f s of it waited for)", child.returncode,
              time.perf_counter() - started, time.perf_counter() - waited)
    if child.returncode == 0:
        return None
    if child.returncode < 0:
        try:
            name = signal.Signals(-child.returncode).name
        except ValueError:
            name = f"signal {-child.returncode}"
        return f"OpenVINO crashed ({name}) while compiling a test graph"
    last = ((stderr or "").strip().splitlines() or [f"exit status {child.returncode}"])[-1][:300]
    return f"the OpenVINO probe failed: {last}"


def _check(hint: str, threads: int) -> None:
    """Compile and run the test graph; exit 1 with the reason on stderr when anything is wrong."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    image = ops.parameter([2, 16, 32, 32], ov.Type.f32, name="image")
    weights = rng.standard_normal((32, 16, 3, 3)).astype(np.float32) / 12.0
    conv = ops.convolution(image, ops.constant(weights), [1, 1], [1, 1], [1, 1], [1, 1])
    silu = ops.multiply(conv, ops.sigmoid(conv))
    pooled = ops.reduce_mean(silu, ops.constant(np.array([2, 3], dtype=np.int64)), keep_dims=True)
    model = ov.Model([ops.multiply(silu, ops.sigmoid(pooled))], [image], "probe")
    compiled = ov.Core().compile_model(model, "CPU", compile_config(hint, threads))
    x = rng.standard_normal((2, 16, 32, 32)).astype(np.float32)
    got = np.asarray(compiled.create_infer_request().infer({0: x})[0])
    expected = _reference(x, weights)
    error = float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-6))
    if not np.isfinite(error) or error > 0.05:
        print(f"OpenVINO's result is wrong (relative error {error:.3g})", file=sys.stderr)
        raise SystemExit(1)


def _reference(x, weights):
    import numpy as np

    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], weights.shape[0], x.shape[2], x.shape[3]), dtype=np.float64)
    for dy in range(3):
        for dx in range(3):
            window = padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
            out += np.einsum("nchw,oc->nohw", window, weights[:, :, dy, dx])
    silu = out / (1 + np.exp(-out))
    pooled = silu.mean(axis=(2, 3), keepdims=True)
    return silu / (1 + np.exp(-pooled))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m inference.engines.openvino_probe HINT THREADS", file=sys.stderr)
        return 2
    try:
        _check(args[0], int(args[1]))
    except ImportError as exc:
        print(f"OpenVINO cannot be imported: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # whatever OpenVINO raises: the parent reports it and runs without OpenVINO
        print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
