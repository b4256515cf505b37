"""The run's result as Markdown, the machine description, and the results section of BENCHMARKS.md.

BENCHMARKS.md keeps a hand-written header; ``update_benchmarks_md`` replaces only
the text between ``RESULTS_START`` and ``RESULTS_END`` (appending them if absent).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

RESULTS_START = "<!-- benchmark results: start (written by python -m benchmarks.run) -->"
RESULTS_END = "<!-- benchmark results: end -->"
KINDS = ("segmentation", "classification", "detection", "Regression")
LABELS = {"reference": "reference (PyTorch eager)", "ours_fp32": "ours, fp32 (CPU provider)",
          "ours_int8": "ours, int8 (CPU provider)", "ours_auto": "ours, auto (shipped CPU path)"}


def machine() -> dict[str, str]:
    """CPU model, cores, memory and the versions that matter, for the report's header."""
    info = {"python": platform.python_version(), "os": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "?").strip()
        info["cores"] = fields.get("CPU(s)", "?").strip()
        flags = fields.get("Flags", "")
        info["isa"] = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16") if f in flags.split())
    except OSError:
        info["cpu"], info["cores"] = platform.processor() or "?", str(os.cpu_count())
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        info["memory"] = "?"
    for name, dist in (("onnxruntime", "onnxruntime-gpu"), ("torch", "torch"), ("numpy", "numpy"),
                       ("opencv", "opencv-python-headless")):
        try:
            info[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


def _f(value, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def _pipeline_table(result: dict) -> list[str]:
    images = result["images"]
    lines = [
        "| pipeline | wall s | images/s | vs reference | steady img/s (vs ref.) | first output s | "
        "peak RSS, largest process | peak RSS, all processes | " + " | ".join(f"{k} img/s" for k in KINDS) + " |",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(KINDS),
    ]
    for m in result["pipelines"].values():  # runs saved before the figure existed
        if "steady_rate" not in m and sum(m.get("kind_seconds", {}).values()) > 0:
            m["steady_rate"] = sum(m["kind_images"].values()) / sum(m["kind_seconds"].values())
    ref_steady = result["pipelines"].get("reference", {}).get("steady_rate")
    for name, m in result["pipelines"].items():
        ratio = result["ratios"].get(name)
        shown = "1.00x" if name == "reference" else (f"**{ratio:.2f}x**" if ratio else "refused")
        rates = m.get("kind_rates", {})
        steady = m.get("steady_rate")
        steady_shown = _f(steady)
        if steady and ref_steady and name != "reference":
            steady_shown += f" ({steady / ref_steady:.2f}x)" if ratio else " (refused)"
        lines.append(
            f"| {LABELS.get(name, name)} | {m['wall_s']:.1f} | {images / m['wall_s']:.2f} | {shown} | {steady_shown} | "
            f"{_f(m['first_output_s'])} | {m['peak_rss_largest_mb']:.0f} MB | {m['peak_rss_tree_mb']:.0f} MB "
            f"({m['processes']} proc.) | " + " | ".join(_f(rates.get(k)) for k in KINDS) + " |"
        )
    return lines


def _comparison_lines(result: dict) -> list[str]:
    lines = ["| comparison | rows | verdict | figures |", "|---|---:|---|---|"]
    for name, c in result["comparisons"].items():
        verdict = "within tolerance" if c["agrees"] else f"**{len(c['differing_rows'])} rows differ**"
        if c["tolerances"]["probability"] is None and c["tolerances"]["coordinate"] is None \
                and c["tolerances"]["mask_agreement"] is None:
            verdict = "reported only"
        figures = ", ".join(f"{k} {v:.4g}" for k, v in sorted(c["figures"].items()))
        lines.append(f"| {name} | {c['rows']} | {verdict} | {figures} |")
    for name, c in result["comparisons"].items():
        if c["differing_rows"]:
            lines += ["", f"Rows that differ in *{name}* (first 15 of {len(c['differing_rows'])}):", ""]
            lines += [f"- {row}" for row in c["differing_rows"][:15]]
    return lines


def _stage_lines(stages: dict) -> list[str]:
    lines = []
    for precision, profile in stages.items():
        lines += [f"*{precision}* (batch {profile['batch_size']}, {profile['threads']} threads; ms per image):", "",
                  "| kind | images | decode | resize | compute | postprocess | encode | serial total | compute by graph |"
                  + (" torch eager compute |" if any("torch_compute_ms_per_image" in v for v in profile["kinds"].values()) else ""),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if any("torch_compute_ms_per_image" in v for v in profile["kinds"].values()) else "")]
        for kind in KINDS:
            k = profile["kinds"].get(kind)
            if not k:
                continue
            ms = k["ms_per_image"]
            graphs = ", ".join(f"{g} {v:.1f}" for g, v in k["compute_ms_per_image_by_graph"].items())
            torch_col = f" {k['torch_compute_ms_per_image']:.1f} |" if "torch_compute_ms_per_image" in k else ""
            lines.append(f"| {kind} | {k['images']} | " + " | ".join(f"{ms[s]:.1f}" for s in
                         ("decode", "resize", "compute", "postprocess", "encode"))
                         + f" | {sum(ms.values()):.1f} | {graphs} |" + torch_col)
        lines.append("")
    return lines


def _cpu_stage_lines(result: dict) -> list[str]:
    from benchmarks.cpu_path import stage_lines

    return stage_lines(result.get("pipeline_stages") or {})


def _accuracy_lines(acc: dict) -> list[str]:
    if "skipped" in acc:
        return [f"Skipped: {acc['skipped']}"]
    lines = [f"Model: `{acc['model']}` ({acc['model_source']}); labelled phantom set `{acc['labelled_set']}` "
             f"({acc['images']} images).", "",
             "| pipeline | seg Dice | seg HD | cls AUC | cls accuracy | det IoU | reg MRE px |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in acc["scores"].items():
        k = s["kinds"]
        get = lambda kind, m: k.get(kind, {}).get(m)  # noqa: E731
        lines.append(f"| {LABELS.get(name, name)} | {_f(get('segmentation', 'dice'), 4)} | {_f(get('segmentation', 'hd'), 2)} | "
                     f"{_f(get('classification', 'auc'), 4)} | {_f(get('classification', 'accuracy'), 4)} | "
                     f"{_f(get('detection', 'iou'), 4)} | {_f(get('Regression', 'mre'), 2)} |")
    for name, c in acc.get("agreement", {}).items():
        figures = ", ".join(f"{k} {v:.4g}" for k, v in sorted(c["figures"].items()))
        state = "within tolerance" if c["agrees"] else f"{len(c['differing_rows'])} rows differ"
        lines.append(f"\nOutputs, {name} ({c['tolerances']['name']}): {state}; {figures}.")
    verdict = acc["segmentation_at_least_reference"]
    lines += ["", f"Segmentation, ours fp32 minus reference: Dice {_f(acc['segmentation_dice_diff'], 4)}, "
              f"HD {_f(acc['segmentation_hd_diff'], 2)} px -> "
              + ("**at least the reference** (Dice >= and HD <=)" if verdict else "**below the reference**"
                 if verdict is False else "not scored")]
    return lines


def render(result: dict) -> str:
    """The results section (Markdown) of one run."""
    m = result["machine"]
    lines = [
        f"### Run of {result['date']}", "",
        f"Command: `{result['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} CPUs ({m.get('isa', '')}), {m['memory']}; Python {m['python']}, "
        f"onnxruntime {m['onnxruntime']}, torch {m['torch']}, numpy {m['numpy']}, OpenCV {m['opencv']}. "
        f"Load average before / after: {result['load']['before']} / {result['load']['after']}. "
        f"GPU: {result['gpu']}.", "",
        f"Input: {result['images']} phantom images (scale {result['scale']:g} of the validation set, seed "
        f"{result['seed']}): " + ", ".join(f"{n} {k}" for k, n in result["images_per_kind"].items()) + ". "
        f"Model: {result['model']['encoder']} + FPN, {result['model']['tasks']} heads, {result['model']['source']}."
        + (f" CPU path (--precision auto): {result['cpu_path']}." if result.get("cpu_path") else "")
        + (f" Each pipeline ran {result['repeats']} times in turn; the median run is shown."
           if result.get("repeats", 1) > 1 else ""),
        "", "#### Speed", "", *_pipeline_table(result), "",
        "Ratios are throughput (the same images, whole process wall time) over the reference's, computed in this "
        "run; a ratio is refused when the outputs disagree beyond the tolerances below. Steady and per-kind img/s "
        "leave out start-up and the first model call (benchmarks/measure.py): the whole-run ratio depends on the "
        "set's size through the start-up, the steady one does not.", "",
        "#### Agreement", "", *_comparison_lines(result), "",
        "#### Targets", "", "| target | value | met |", "|---|---|---|",
        *[f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**' if t['met'] is False else 'n/a'} |"
          for t in result["targets"]], "",
        "#### Where the time goes", "", *_stage_lines(result["stages"]), *_cpu_stage_lines(result),
        "Model-only floor (random input, best of 3, ms per image by batch size): "
        + "; ".join(f"{p} {t}: " + ", ".join(f"batch {b}: {v:.1f}" for b, v in f.items())
                    for p, per_task in result["floor"].items() for t, f in per_task.items()), "",
        "#### Accuracy (trained model)", "", *_accuracy_lines(result["accuracy"]), "",
    ]
    return "\n".join(lines)


def update_benchmarks_md(path: Path, section: str, start: str = RESULTS_START, end: str = RESULTS_END,
                         heading: str = "## Results") -> None:
    """Replace the section of ``path`` between ``start`` and ``end`` with ``section``, atomically.

    Absent markers: ``heading`` and the marked section are appended.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n\n{section.rstrip()}\n\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + f"\n\n{heading}\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report OUT/result.json [--markdown BENCHMARKS.md]``: render a saved run again."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("result", type=Path, help="result.json of a run")
    parser.add_argument("--markdown", type=Path, default=None, help="also replace this file's results section")
    args = parser.parse_args(argv)
    section = render(json.loads(args.result.read_text(encoding="utf-8")))
    (args.result.parent / "results.md").write_text(section, encoding="utf-8")
    if args.markdown is not None:
        update_benchmarks_md(args.markdown, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
