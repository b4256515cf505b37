"""CPU variants: faster ways to run a model folder's graphs on a CPU, and which one a run may use.

A variant runs one of the folder's graph sets with another CPU runtime at another inference
precision. The one known today:

- ``bf16``: the fp32 graphs compiled by the OpenVINO runtime with ``INFERENCE_PRECISION_HINT=bf16``
  (``inference.engines.openvino_runner``); needs the ``openvino`` package and a CPU with AVX-512
  BF16 or AMX (``/proc/cpuinfo`` flags ``avx512_bf16`` or ``amx_bf16``).

``--precision auto`` on a CPU (``choose_auto``) uses a variant only when all of these hold, else
fp32 on ONNX Runtime as before, with one log line saying why:

1. the manifest records it as checked (``exporter.cpu_check``: its outputs against fp32 on held-out
   images), and only for the task kinds that passed: a task whose kind failed the check, or a
   variant never checked, runs on ONNX Runtime fp32;
2. it can run here: the package is installed, the CPU has the instructions, and a probe in a child
   process compiled and ran a test graph (``openvino_probe``: a crash cannot kill the run);
3. the run is long enough to pay for it: importing and compiling cost seconds that a few images
   never win back (``worth_it``, from the check's figures).

Among several, the fastest by the check's ``speedup``. ``--precision bf16`` asks for a variant
explicitly (FatalError when it cannot run here). No torch and no OpenVINO import here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # standard library only at import: prefetch_probe runs before the heavy imports (cli.run)
    from contract.manifest import CpuVariantCheck, Manifest

log = logging.getLogger(__name__)

#: Images a run needs before a variant is used when its check recorded no start-up cost or fp32 time.
MIN_IMAGES_UNKNOWN_COST = 256


@dataclass(frozen=True)
class CpuVariant:
    name: str
    graph_set: str
    runtime: str  # the importable package that runs it
    hint: str  # OpenVINO's INFERENCE_PRECISION_HINT
    cpu_flags: tuple[str, ...]  # the CPU needs one of these /proc/cpuinfo flags
    description: str


VARIANTS: dict[str, CpuVariant] = {
    "bf16": CpuVariant("bf16", "fp32", "openvino", "bf16", ("avx512_bf16", "amx_bf16"),
                       "the fp32 graphs run by OpenVINO at bf16 inference precision"),
}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (``/proc/cpuinfo``); empty where unknown (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


#: CPU flags that OpenVINO's CPU kernels depend on: compiled graphs (``CompiledGraphs``) are used only on a CPU
#: with the same ones as the CPU that compiled them.
KERNEL_FLAGS = frozenset({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                          "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8"})


def kernel_flags() -> list[str]:
    """This CPU's flags among ``KERNEL_FLAGS``, sorted."""
    return sorted(cpu_flags() & KERNEL_FLAGS)


def cpu_name() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def package_present(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (OpenVINO's import costs about a second)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def unavailable_reason(variant: CpuVariant, threads: int, probe: bool = True) -> str | None:
    """Why ``variant`` cannot run on this machine (package, instructions, the crash probe), or None."""
    if not package_present(variant.runtime):
        return f"the {variant.runtime} package is not installed (it is pinned in requirements.txt)"
    flags = cpu_flags()
    if not flags.intersection(variant.cpu_flags):
        return f"this CPU lacks {' / '.join(variant.cpu_flags)}"
    if probe:
        from inference.engines.openvino_probe import probe as run_probe

        return run_probe(variant.hint, threads)
    return None


def prefetch_probe(model_dir: Path, requested: str, threads: int) -> str | None:
    """Launch the crash probe of the variant a CPU run at ``requested`` precision may use, without waiting.

    Called first thing in a batch run (``cli.run``, before its imports of numpy, pydantic and ONNX
    Runtime), so that the probe's child (0.2-0.3 s) runs on another core beside the parent's own
    start-up; ``choose_auto`` / ``check_explicit`` read its answer later (``openvino_probe.probe``).
    The manifest is read as plain JSON here, its validation comes later: a record counts when
    ``CpuVariantCheck.usable_kinds`` would give a kind. Nothing happens when no variant can be
    chosen (no usable record, no package, no CPU instructions, an unreadable manifest). Returns the
    variant probed."""
    if requested not in VARIANTS and requested != "auto":
        return None
    try:
        records = json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8")).get("cpu_variants") or {}
    except (OSError, ValueError, AttributeError):
        return None
    usable = sorted(((r.get("speedup") or 0.0, name) for name, r in records.items() if name in VARIANTS
                     and isinstance(r, dict) and (r.get("kinds_passed") or (r.get("kinds_passed") is None and r.get("passed")))),
                    reverse=True)
    name = requested if requested in VARIANTS else (usable[0][1] if usable else None)
    if name is None or unavailable_reason(VARIANTS[name], threads, probe=False) is not None:
        return None
    from inference.engines.openvino_probe import start

    start(VARIANTS[name].hint, threads)
    return name


def worth_it(check: CpuVariantCheck, expected_images: int | None) -> bool:
    """Whether ``expected_images`` (None: unknown, a long-lived process) pay for the variant's start-up.

    From the check's figures: images x fp32 time per image x (1 - 1/speedup) must exceed the start-up.
    """
    if expected_images is None:
        return True
    if not check.speedup or check.speedup <= 1.0:
        return False
    if check.startup_s is None or check.fp32_ms_per_image is None:
        return expected_images >= MIN_IMAGES_UNKNOWN_COST
    saving_s = expected_images * check.fp32_ms_per_image / 1000.0 * (1.0 - 1.0 / check.speedup)
    return saving_s > check.startup_s


def choose_auto(manifest: Manifest, threads: int, expected_images: int | None = None) -> str:
    """The precision ``--precision auto`` runs on a CPU: the fastest usable passed variant, else ``fp32``."""
    checks = manifest.cpu_variants or {}
    passed = sorted(((name, c) for name, c in checks.items() if c.usable_kinds() and name in VARIANTS),
                    key=lambda item: -(item[1].speedup or 0.0))
    if not passed:
        return "fp32"
    for name, check in passed:
        if not worth_it(check, expected_images):
            log.info("CPU variant %s not used: %s images do not pay for its start-up (%.1f s); fp32", name,
                     expected_images, check.startup_s or 0.0)
            continue
        reason = unavailable_reason(VARIANTS[name], threads)
        if reason is None:
            log.info("CPU variant %s: %s, for %s tasks (their accuracy check passed; %.2fx at the check)", name,
                     VARIANTS[name].description, ", ".join(sorted(check.usable_kinds())), check.speedup or 0.0)
            return name
        log.warning("CPU variant %s cannot run here, using ONNX Runtime fp32: %s", name, reason)
    return "fp32"


def check_explicit(name: str, manifest: Manifest, threads: int) -> str | None:
    """For ``--precision NAME``: why the variant cannot run here (None: it can); warns when unchecked/failed."""
    variant = VARIANTS[name]
    manifest.graph_set(variant.graph_set)  # ManifestError naming the fix
    check = (manifest.cpu_variants or {}).get(name)
    if check is None:
        log.warning("--precision %s: this model's %s was never checked against fp32 (python -m exporter.cpu_check "
                    "MODEL_DIR records it)", name, name)
    elif not check.passed:  # explicit: every task runs on the variant, even the kinds that failed
        log.warning("--precision %s: this model's %s FAILED its accuracy check against fp32 (%s)", name, name,
                    "; ".join(check.failures[:2]) or "see the manifest")
    return unavailable_reason(variant, threads)
