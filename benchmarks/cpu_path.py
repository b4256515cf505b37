"""The shipped CPU path in ``benchmarks.run``: ``--precision auto`` beside fp32, judged by the check's rule.

``ours_auto`` is ``python -m inference --device cpu --precision auto``: on a CPU it runs the CPU variant
that the model folder's manifest records as passed (``exporter.cpu_check``), for the task kinds that
passed, else fp32. Its outputs are compared with ``ours_fp32`` by the same rule as the check
(``exporter.cpu_compare``: masks >= 99 % equal pixels, probabilities within 1e-2, boxes and points
within 1 px, at each image's own size); its ratios are refused when they disagree. ``stage_table``
adds, per precision, where a real run's time goes (``benchmarks.pipeline_stages``).
"""

from __future__ import annotations

from pathlib import Path

from contract.manifest import load_manifest

NAME = "ours_auto"
LABEL = "ours, auto (shipped CPU path)"


def describe_cpu_path(model_dir: Path) -> str:
    """What ``--precision auto`` may use on a CPU for this model (from its manifest)."""
    checks = load_manifest(model_dir).cpu_variants or {}
    if not checks:
        return "no CPU variant recorded: auto runs fp32 (ONNX Runtime)"
    parts = []
    for name, check in checks.items():
        kinds = ", ".join(sorted(check.usable_kinds())) or "no kind"
        parts.append(f"{name} ({check.runtime}): passed for {kinds}; {check.speedup or 0:.2f}x at the check")
    return "; ".join(parts)


def compare_auto(input_dir: Path, fp32_dir: Path, auto_dir: Path) -> dict:
    """``ours_auto`` against ``ours_fp32`` by the check's rule, in the shape of ``benchmarks.compare``'s dicts."""
    from exporter.cpu_compare import TOLERANCES, compare_outputs

    result = compare_outputs(input_dir, fp32_dir, auto_dir)
    return {"tolerances": {"name": "CPU variant vs fp32 (exporter.cpu_compare)", "probability": TOLERANCES["probability"],
                           "coordinate": TOLERANCES["pixels"], "mask_agreement": TOLERANCES["mask_agreement"]},
            "rows": result.images, "agrees": result.passed, "figures": result.figures,
            "differing_rows": result.failures}


def ratio_vs_fp32(result: dict) -> float | None:
    """fp32's wall time over auto's (None when either failed or the outputs disagree)."""
    p, c = result["pipelines"], result["comparisons"].get(f"{NAME} vs ours_fp32", {})
    if NAME not in p or p[NAME]["returncode"] or p["ours_fp32"]["returncode"] or not c.get("agrees"):
        return None
    return p["ours_fp32"]["wall_s"] / p[NAME]["wall_s"]


def targets(result: dict) -> list[dict]:
    if NAME not in result["pipelines"]:
        return []
    vs_fp32, vs_ref = ratio_vs_fp32(result), result["ratios"].get(NAME)
    return [
        {"target": "ours auto (CPU path) >= 1.5x ours fp32 (whole run)",
         "value": "refused" if vs_fp32 is None else f"{vs_fp32:.2f}x", "met": None if vs_fp32 is None else vs_fp32 >= 1.5},
        {"target": "ours auto (CPU path) >= 5x reference throughput",
         "value": "refused" if vs_ref is None else f"{vs_ref:.2f}x", "met": None if vs_ref is None else vs_ref >= 5},
    ]


def stage_lines(stages: dict) -> list[str]:
    """The pipeline-stage table (``benchmarks.pipeline_stages.markdown``) with its heading, if measured."""
    if not stages:
        return []
    from benchmarks.pipeline_stages import markdown

    return ["Inside one real run per precision (``benchmarks.pipeline_stages``; seconds summed over calls):", "",
            markdown(stages["figures"], stages["images"]), ""]
