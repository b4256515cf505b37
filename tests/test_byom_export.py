"""Bring your own model: a team's PyTorch network through export.py --model and python -m inference."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

import byom_nets
from byom_check import check_predictions, sample_input, seeded
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK
from contract.manifest import load_manifest

NETS = Path(byom_nets.__file__)


def _save(net, path: Path, wrap: str | None = None, prefix: str = "") -> Path:
    state = {prefix + k: v for k, v in net.state_dict().items()}
    torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    return path


def test_dict_network_with_all_four_kinds_predicts_what_pytorch_predicts(tmp_path):
    net = seeded(byom_nets.make_dict_net(width=8, decoder_width=12), seed=11)
    checkpoint = _save(net, tmp_path / "team.pt", wrap="model", prefix="module.")
    out = tmp_path / "model"
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    code = export_main([str(checkpoint), "--model", f"{NETS}:make_dict_net", "--model-arg", "decoder_width=12",
                        "--input-size", "64", "--channel-order", "BGR", "--mean", *map(str, mean), "--std", *map(str, std),
                        "--out", str(out)])
    assert code == 0
    manifest = load_manifest(out)
    assert manifest.model.architecture == "byom" and manifest.model.preprocessing.color == "BGR"
    assert json.loads(manifest.model.params["model_args"]) == {"decoder_width": 12}
    assert all(t.path == [t.task_id] and t.task_index is None for t in manifest.tasks)
    assert max(manifest.parity.max_rel_error.values()) <= 1e-4

    # each task graph holds only what its output needs: no decoder in the classification graph
    def initializer_names(task_id):
        return {i.name for i in onnx.load(str(out / "graphs" / f"{task_id}.onnx"), load_external_data=False).graph.initializer}
    assert any(name.startswith("net.heads.decoder") for name in initializer_names("fetal_head"))
    assert not any(name.startswith("net.heads.decoder") for name in initializer_names("breast_3cls"))
    assert not any(name.startswith("net.heads.seg") for name in initializer_names("IUGC"))
    # weights stored once: the shared file holds each large tensor once
    large = sum(v.numel() * 4 for v in net.state_dict().values() if v.numel() * 4 >= 1024)
    assert (out / "graphs" / "weights.bin").stat().st_size < large + 4096 * (len(net.state_dict()) + 1)

    sample = sample_input(tmp_path)
    predictions = tmp_path / "out"
    assert inference_main(["--input", str(sample), "--output", str(predictions), "--weights", str(out), "--device", "cpu"]) == EXIT_OK
    check_predictions(net, sample, predictions, mean=mean, std=std, bgr=True)


def test_task_conditioned_network_gets_its_task_index(tmp_path):
    net = seeded(byom_nets.make_conditioned_net(width=8, decoder_width=8, depth=2), seed=5)
    with torch.no_grad():  # a strong task embedding: each task sees clearly different features
        net.task_embedding.weight.normal_(0.0, 1.0)
    checkpoint = _save(net, tmp_path / "cond.pt", wrap="ema")
    out = tmp_path / "model"
    assert export_main([str(checkpoint), "--model", "byom_nets:make_conditioned_net", "--model-arg", "depth=2",
                        "--input-size", "64", "--out", str(out)]) == 0
    manifest = load_manifest(out)
    positions = {t["task_id"]: i for i, t in enumerate(net.tasks)}
    assert {t.task_id: t.task_index for t in manifest.tasks} == positions
    assert all("task_index" in g.inputs for g in manifest.graph_set("fp32").graphs.values())

    sample = sample_input(tmp_path)
    predictions = tmp_path / "out"
    assert inference_main(["--input", str(sample), "--output", str(predictions), "--weights", str(out)]) == EXIT_OK
    check_predictions(net, sample, predictions, positions=positions)
    # the index matters: with another task's index the reference would not have matched
    wrong = {task_id: (i + 1) % len(positions) for task_id, i in positions.items()}
    with pytest.raises(AssertionError):
        check_predictions(net, sample, predictions, positions=wrong)

    # the PyTorch fallback imports the team's module and predicts the same
    by_torch = tmp_path / "out_torch"
    assert inference_main(["--input", str(sample), "--output", str(by_torch), "--weights", str(out), "--engine", "torch"]) == EXIT_OK
    check_predictions(net, sample, by_torch, positions=positions)


def test_fallback_without_the_module_says_so_once(tmp_path, caplog):
    net = byom_nets.make_dict_net()
    out = tmp_path / "model"
    assert export_main([str(_save(net, tmp_path / "a.pt")), "--model", f"{NETS}:make_dict_net",
                        "--input-size", "64", "--out", str(out)]) == 0
    manifest_file = out / "manifest.json"
    data = json.loads(manifest_file.read_text())
    data["model"]["params"]["module"] = "team_code_not_installed:make_dict_net"
    manifest_file.write_text(json.dumps(data))
    sample = sample_input(tmp_path, ("breast_3cls",))
    code = inference_main(["--input", str(sample), "--output", str(tmp_path / "o"), "--weights", str(out), "--engine", "torch"])
    assert code == 1
    messages = [r.getMessage() for r in caplog.records if "no PyTorch fallback for this model" in r.getMessage()]
    assert len(messages) == 1 and "team_code_not_installed" in messages[0]


BAD = [  # (--model, checkpoint state, message fragment, exit code: 2 a wrong command line, 1 a model error)
    ("no_such_team_module:make", None, "cannot import no_such_team_module", 2),
    ("{nets}:no_such_factory", None, "has no callable 'no_such_factory'", 2),
    ("{nets}:make_raising", None, "make_raising() raised RuntimeError: weights path /data/x.pt not found", 1),
    ("{nets}:make_no_tasks_net", None, "has no `tasks` attribute and no --tasks was given", 1),
    ("{nets}:make_tensor_net", None, "forward returned a Tensor, not a dict", 1),
    ("{nets}:make_missing_task_net", None, "forward's dict has no output for task IUGC", 1),
    ("{nets}:make_wrong_shape_net", None,
     "task breast_3cls (classification): output shape 2 x 2 for a batch of 2, expected N x 3 logits", 1),
    ("{nets}:make_dict_net", {"other.weight": torch.zeros(3)}, "does not fit the network of --model", 1),
]


@pytest.mark.parametrize("spec, state, fragment, exit_code", BAD, ids=[b[2].split()[0] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_one_line_naming_the_fix(tmp_path, capsys, spec, state, fragment, exit_code):
    checkpoint = tmp_path / "team.pt"
    torch.save(state if state is not None else byom_nets.make_dict_net().state_dict(), checkpoint)
    out = tmp_path / "model"
    code = export_main([str(checkpoint), "--model", spec.format(nets=NETS), "--input-size", "64", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == exit_code
    assert len(err.splitlines()) == 1 and err.startswith("export.py: error:") and fragment in err, err
    assert not out.exists() and not any(p.name.startswith(".model") for p in tmp_path.iterdir())


def test_tasks_option_gives_the_task_list_of_a_network_without_one_at_any_input_size(tmp_path):
    net = byom_nets.make_no_tasks_net()
    out = tmp_path / "model"
    assert export_main([str(_save(net, tmp_path / "a.pt")), "--model", f"{NETS}:make_no_tasks_net", "--input-size", "72",
                        "--tasks", "fetal_head", "cardiac_multi", "breast_3cls", "thyroid_nodule_det", "IUGC",
                        "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert [t.task_id for t in manifest.tasks] == [t["task_id"] for t in byom_nets.TASKS]
    assert manifest.model.preprocessing.input_size == (72, 72)  # not a multiple of 32: the team's network decides


def test_checkpoint_with_other_keys_lists_them(tmp_path, capsys):
    state = byom_nets.make_dict_net().state_dict()
    state["heads.extra.weight"] = torch.zeros(2)
    del state["stem.0.0.weight"]
    torch.save({"model_state_dict": state}, tmp_path / "a.pt")
    assert export_main([str(tmp_path / "a.pt"), "--model", f"{NETS}:make_dict_net", "--input-size", "64",
                        "--out", str(tmp_path / "m")]) == 1  # the checkpoint does not fit the network: a model error
    err = capsys.readouterr().err
    assert "missing 1 tensors" in err and "stem.0.0.weight" in err and "unexpected 1 tensors" in err
    assert not (tmp_path / "m").exists()
