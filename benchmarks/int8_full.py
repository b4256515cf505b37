"""The int8 candidate that also covers SiLU and squeeze-excitation, against fp32 and OpenVINO bf16.

    python -m benchmarks.int8_full --model DIR --calibration DIR --images DIR [--tasks fetal_head breast_2cls]

The model's fp32 encoder is quantized with ONNX Runtime's static QDQ (per-channel int8 weights,
uint8 activations, MinMax calibration on ``--calibration`` images read by the runtime's own
preprocessing), quantizing Conv, Gemm, MatMul and also Sigmoid, Mul, Add and GlobalAveragePool
(EfficientNet's SiLU and squeeze-excitation, which the exporter's int8 leaves in float between
Q/DQ pairs). Then, on up to 8 images of each task from ``--images`` (held out: another seed),
side by side in alternating rounds: the encoder's time per image for ORT fp32, this int8 and
OpenVINO bf16 (when installed); and each task's outputs decoded at the image's own size (the FPN
and head stay fp32) against fp32: mask agreement, probability and pixel differences.
Nothing is written into the model folder (the int8 encoder lives in a scratch folder).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from contract.imaging import preprocess, read_image
from contract.kinds import decode
from contract.manifest import ModelFolder

OPS = ["Conv", "Gemm", "MatMul", "Sigmoid", "Mul", "Add", "GlobalAveragePool"]


def quantize_encoder(folder: ModelFolder, calibration: Path, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from exporter.images import calibration_batches, calibration_files

    batches = calibration_batches(calibration_files(calibration, 64), folder.manifest.model.preprocessing)

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": b} for b in batches])

        def get_next(self):
            return next(self.items, None)

    source = folder.path / folder.manifest.graph_set("fp32").graphs["encoder"].path
    prepared, target = out / "prepared.onnx", out / "encoder_int8.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
    quantize_static(str(prepared), str(target), Feeds(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=OPS, extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return target


def _session(path: Path, threads: int = 2):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_full", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--calibration", type=Path, required=True, help="folder of calibration images")
    p.add_argument("--images", type=Path, required=True, help="held-out images, challenge layout")
    p.add_argument("--tasks", nargs="+", default=["fetal_head", "breast_2cls", "thyroid_nodule_det", "FUGC"])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    folder = ModelFolder.open(args.model)
    from inference.engines.cpu_variants import package_present
    from inference.engines.runner import GraphRunner

    fp32 = GraphRunner(folder.path, folder.manifest.graph_set("fp32"), "cpu", 2)
    encoders = {"ORT fp32": fp32.session("encoder")}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        encoders["ORT int8 (SiLU/SE too)"] = _session(quantize_encoder(folder, args.calibration, Path(tmp)))
        print(f"quantized in {time.perf_counter() - started:.0f} s")
        if package_present("openvino"):
            from inference.engines.openvino_runner import OpenVinoRunner

            encoders["OpenVINO bf16"] = OpenVinoRunner(folder.path, folder.manifest.graph_set("fp32"), "bf16").session(
                "encoder")
        print("| task | candidate | encoder ms/image (median) | vs fp32 | agreement with fp32 |")
        print("|---|---|---:|---:|---|")
        for task_id in args.tasks:
            task = folder.manifest.task(task_id)
            with (args.images / "csv_files" / f"{task_id}.csv").open(newline="") as handle:
                rows = list(csv.DictReader(handle))[:8]
            images = [read_image(args.images / "csv_files" / r["image_path"]) for r in rows]
            batch = preprocess(images, folder.manifest.model.preprocessing)
            names = [o.name for o in encoders["ORT fp32"].get_outputs()]
            times: dict[str, list[float]] = {k: [] for k in encoders}
            features = {k: dict(zip(names, s.run(names, {"image": batch}))) for k, s in encoders.items()}
            for _ in range(args.rounds):
                for k, s in encoders.items():
                    started = time.perf_counter()
                    s.run(names, {"image": batch})
                    times[k].append((time.perf_counter() - started) / len(batch))
            rest = task.path[1:]
            outputs = {k: _rest(fp32, f, rest, task) for k, f in features.items()}
            base = statistics.median(times["ORT fp32"])
            for k in encoders:
                agreement = _agreement(task, images, outputs["ORT fp32"], outputs[k])
                print(f"| {task_id} | {k} | {1000 * statistics.median(times[k]):.1f} | "
                      f"{base / statistics.median(times[k]):.2f}x | {agreement} |", flush=True)
    return 0


def _rest(runner, features: dict, graphs: list[str], task) -> np.ndarray:
    tensors = dict(features)
    for name in graphs:
        session = runner.session(name)
        outs = [o.name for o in session.get_outputs()]
        tensors.update(zip(outs, session.run(outs, {i.name: tensors[i.name] for i in session.get_inputs()})))
    return tensors[task.output_tensor]


def _agreement(task, images, ref: np.ndarray, out: np.ndarray) -> str:
    worst = None
    for i, image in enumerate(images):
        a, b = decode(task.kind, ref[i], image.shape[:2]), decode(task.kind, out[i], image.shape[:2])
        if a.mask is not None:
            value = float(np.mean(a.mask == b.mask))
            worst = value if worst is None else min(worst, value)
            label = "mask agreement min"
        else:
            key = next(k for k in a.fields if k.endswith("pixels") or k == "predicted_probs")
            value = float(np.max(np.abs(np.asarray(a.fields[key]) - np.asarray(b.fields[key]))))
            worst = value if worst is None else max(worst, value)
            label = f"max {key} diff"
    return f"{label} {worst:.4g}"


if __name__ == "__main__":
    sys.exit(main())
