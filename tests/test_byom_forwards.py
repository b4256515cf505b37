"""Forwards keyed by task name or called once per task (issue 23, item 7), exit codes, and the subset line (item 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import byom_nets
from byom_check import check_predictions, sample_input, seeded
from contract.manifest import OUTPUT_ROLE, ModelFolder, load_manifest
from contract.tasks import TaskRegistry
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK

NETS = Path(byom_nets.__file__)


class Reference:
    """A per-task forward seen as ``net(image) -> {task_id: tensor}`` (what ``byom_check`` reads)."""

    def __init__(self, net, key):
        self.net, self.key, self.tasks = net, key, net.tasks

    def __call__(self, image):
        return {t["task_id"]: self.net(image, self.key(i, t["task_id"])) for i, t in enumerate(self.tasks)}


def _export(tmp_path: Path, net, factory: str, *extra: str) -> tuple[int, Path]:
    torch.save(net.state_dict(), tmp_path / "team.pt")
    out = tmp_path / "model"
    code = export_main([str(tmp_path / "team.pt"), "--model", f"{NETS}:{factory}", "--input-size", "64",
                        "--out", str(out), *extra])
    return code, out


def test_forward_taking_the_task_name_exports_and_predicts_what_pytorch_predicts(tmp_path):
    net = seeded(byom_nets.make_name_net(), seed=3)
    with pytest.raises(KeyError):  # the failure of issue 23: called with a task_index tensor
        net(torch.zeros(2, 3, 64, 64), torch.zeros(2, dtype=torch.int64))
    code, out = _export(tmp_path, net, "make_name_net")
    assert code == 0
    manifest = load_manifest(out)
    assert manifest.model.params["call"] == "per_task_name" and manifest.model.params["conditioned"] is False
    assert all(g.inputs == ["image"] for g in manifest.graph_set("fp32").graphs.values())
    assert max(manifest.parity.max_rel_error.values()) <= 1e-4
    sample = sample_input(tmp_path)
    reference = Reference(net, lambda position, task_id: task_id)
    for engine in ("onnxruntime", "torch"):  # the PyTorch fallback calls the forward with names too
        predictions = tmp_path / f"out_{engine}"
        assert inference_main(["--input", str(sample), "--output", str(predictions), "--weights", str(out),
                               "--engine", engine]) == EXIT_OK
        check_predictions(reference, sample, predictions)


@pytest.mark.parametrize("factory, call, key", [
    ("make_index_per_call_net", "per_task_index", lambda position, task_id: torch.full((1,), position)),
    ("make_position_net", "per_task_position", lambda position, task_id: position),
])
def test_forward_returning_one_task_per_call(tmp_path, factory, call, key):
    net = seeded(getattr(byom_nets, factory)(), seed=4)
    code, out = _export(tmp_path, net, factory)
    assert code == 0
    folder = ModelFolder.open(out)
    assert folder.manifest.model.params["call"] == call
    assert all(t.task_index is None for t in folder.manifest.tasks)  # the task is fixed in each graph, not an input
    from inference.engines.onnx_engine import OnnxEngine

    engine = OnnxEngine(folder, device="cpu", precision="fp32")
    batch = np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32)
    for position, task_id in enumerate(byom_nets.TASK_IDS):
        task = folder.manifest.task(task_id)
        actual = engine.run(task, batch)[OUTPUT_ROLE[task.kind]]
        with torch.no_grad():
            raw = net(torch.from_numpy(batch), key(position, task_id))
        expected = torch.softmax(raw, 1).numpy() if task.kind.value == "classification" else raw.numpy()
        if expected.ndim == 2 and task.kind.value == "detection":
            expected = np.concatenate([expected, np.zeros((3, 1), np.float32)], 1)[:, :, None, None]
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("factory, fragments", [
    ("make_broken_per_call_net", ["with a task_index tensor: RuntimeError: this forward needs CUDA",
                                  "with the task name: RuntimeError", "docs/bring-your-own-model.md"]),
    ("make_ambiguous_net", ["give task fetal_head different outputs", "annotate task",
                            "docs/bring-your-own-model.md"]),
])
def test_a_forward_export_cannot_call_is_a_model_error_naming_the_recipe(tmp_path, capsys, factory, fragments):
    code, out = _export(tmp_path, getattr(byom_nets, factory)(), factory)
    err = capsys.readouterr().err.strip()
    assert code == 1, err  # the model, not the command line
    assert len(err.splitlines()) == 1 and err.startswith("export.py: error:")
    assert all(fragment in err for fragment in fragments), err
    assert "check --input-size" not in err or factory == "make_broken_per_call_net"
    assert not out.exists()


def test_bad_arguments_are_exit_2(tmp_path, capsys):
    code, _ = _export(tmp_path, byom_nets.make_name_net(), "make_name_net", "--model-arg", "3=x")
    assert code == 2 and "expected KEY=VALUE" in capsys.readouterr().err
    code, _ = _export(tmp_path, byom_nets.make_name_net(), "make_name_net", "--tasks", "fetal_head", "no_such_task")
    assert code == 2 and "no_such_task" in capsys.readouterr().err


def test_a_subset_model_names_the_official_tasks_it_does_not_serve(tmp_path, capsys):
    code, out = _export(tmp_path, seeded(byom_nets.make_dict_net(), seed=1), "make_dict_net")
    assert code == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if "official tasks" in line]
    missing = [t for t in TaskRegistry.official().ids if t not in byom_nets.TASK_IDS]
    assert len(missing) == 22
    assert lines == [f"serves 5 of the 27 official tasks; not served: {', '.join(missing)}"]
    assert "not served" not in (out / "manifest.json").read_text()  # nothing new recorded


def test_a_model_serving_every_official_task_prints_no_such_line(tiny_model_dir, capsys):
    from exporter.cli import report
    from exporter.pipeline import official_coverage

    report(load_manifest(tiny_model_dir), tiny_model_dir, 1.0)
    assert "official tasks" not in capsys.readouterr().out
    assert official_coverage(["fetal_head", "my_own_task"]).startswith(
        "serves 1 of the 27 official tasks (and 1 of its own: my_own_task); not served: ")


@pytest.mark.parametrize("raw", [np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
                                 np.random.default_rng(1).standard_normal((2, 3, 5, 6)).astype(np.float32)])
def test_adapters_are_the_same_in_torch_onnx_and_numpy(raw):
    """Every adapter the kind specs name exists in all three forms, and they compute the same role tensor."""
    import onnx
    import onnxruntime as ort

    from contract.kinds.base import ADAPTERS
    from exporter.onnx_adapters import NUMPY_ADAPTERS, ONNX_ADAPTERS, ROLE_RANK
    from network.byom import TORCH_ADAPTERS

    assert set(TORCH_ADAPTERS) == set(ONNX_ADAPTERS) == set(NUMPY_ADAPTERS) == set(ROLE_RANK) == set(ADAPTERS)
    for name in ADAPTERS:
        if name == "box_to_grid" and raw.shape[1:] != (4,):
            continue
        graph = onnx.helper.make_graph([], "adapter", [onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT,
                                                                                            list(raw.shape))], [])
        ONNX_ADAPTERS[name](graph, "raw", "role", "t", 17)
        rank = ROLE_RANK[name](raw.ndim)
        graph.output.append(onnx.helper.make_tensor_value_info("role", onnx.TensorProto.FLOAT, [None] * rank))
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        by_onnx = session.run(["role"], {"raw": raw})[0]
        by_torch = TORCH_ADAPTERS[name](torch.from_numpy(raw)).numpy()
        by_numpy = NUMPY_ADAPTERS[name](raw)
        assert by_onnx.ndim == rank
        np.testing.assert_allclose(by_onnx, by_numpy, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(by_torch, by_numpy, rtol=1e-6, atol=1e-7)
