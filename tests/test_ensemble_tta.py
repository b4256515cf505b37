"""Ensembles and flip test-time augmentation: averages checked against an independent reference.

Two tiny networks (seeds 1 and 2, 8 tasks covering every kind, a 1-class segmentation, an
unsafe and a point-swapping task) are exported once; the reference runs each member's own
folder with the plain ONNX engine and averages by hand, in this file, per the documented
rules (docs/ensembles.md, "How outputs are averaged").
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.flip import DEFAULT_FLIP_RULES, PHANTOM_DIRECTION_PERMUTATION, UNSAFE, parse_rule
from contract.imaging import preprocess
from contract.manifest import ModelFolder, load_manifest
from contract.tasks import OFFICIAL_TASKS, TaskKind, TaskRegistry, TaskSpec
from inference.engines.fallback import FallbackEngine
from inference.engines.onnx_engine import OnnxEngine
from inference.engines.ensemble import EnsembleEngine
from inference.engines.factory import make_engine
from inference.engines.infer import infer_batch
from inference.engines.predictor import Predictor
from tests.conftest import make_tiny_config

OFFICIAL = TaskRegistry.official()
TASKS = [OFFICIAL[t] for t in ("fetal_head", "cervix_multi", "breast_3cls", "fetal_head_pos_cls",
                               "thyroid_nodule_det", "fetal_femur", "IUGC")]
TASKS.append(TaskSpec(task_id="lone_fg", kind=TaskKind.SEGMENTATION, num_classes=1))
SIZES = [(80, 100), (64, 64), (50, 70)]


def _export_tiny(seed: int, out: Path) -> Path:
    import torch

    from exporter import export_model
    from network import build_model

    torch.manual_seed(seed)
    model = build_model(make_tiny_config(TASKS))
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    export_model(model.eval(), out, source={"checkpoint": f"tiny, seed {seed}"})
    return out


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("members")
    return [_export_tiny(1, root / "a"), _export_tiny(2, root / "b")]


@pytest.fixture(scope="module")
def ensemble_dir(members, tmp_path_factory) -> Path:
    from exporter.ensemble import export_ensemble

    out = tmp_path_factory.mktemp("ensemble") / "model"
    export_ensemble(members, out)
    return out


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    out = []
    for h, w in SIZES:  # smooth structure plus noise, so that outputs vary across the image
        yy, xx = np.mgrid[0:h, 0:w]
        base = 120 + 80 * np.sin(xx / 7.0) * np.cos(yy / 9.0) + 30 * (xx / w)
        noisy = base[..., None] + rng.normal(0, 25, (h, w, 3))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


# --- the independent reference ------------------------------------------------------------------

def raw(folder: Path, task_id: str, images: list[np.ndarray]) -> np.ndarray:
    """The member's role tensor for ``images`` from its own folder and the plain engine."""
    model = ModelFolder.open(folder)
    batch = preprocess(images, model.manifest.model.preprocessing)
    return infer_batch(OnnxEngine(model, device="cpu"), model.manifest.task(task_id), batch).astype(np.float64)


def class_probs(logits: np.ndarray) -> np.ndarray:
    if logits.shape[0] == 1:
        p = 1.0 / (1.0 + np.exp(-logits[0]))
        return np.stack([1.0 - p, p])
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)


def mask_of(mean_probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    channels = [cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=cv2.INTER_LINEAR) for c in mean_probs]
    return np.argmax(np.stack(channels), axis=0).astype(np.uint8)


def box_of(grid: np.ndarray) -> np.ndarray:
    r, c = np.unravel_index(np.argmax(grid[4]), grid[4].shape)
    return grid[:4, r, c]


def mirror_box(box: np.ndarray) -> np.ndarray:
    return np.array([1 - box[2], box[1], 1 - box[0], box[3]])


def mirror_points(points: np.ndarray, swap: bool) -> np.ndarray:
    xy = points.reshape(-1, 2).copy()
    xy[:, 0] = 1 - xy[:, 0]
    return (xy[::-1] if swap else xy).reshape(-1)


def reference(task: TaskSpec, runs: list[np.ndarray], mirrored: list[np.ndarray], size, i: int,
              swap_points: bool = False, class_permutation=None):
    """Image ``i``'s expected prediction from plain runs and mirror-image runs (mirror runs: [] if not flipped)."""
    if task.kind is TaskKind.CLASSIFICATION:
        estimates = [r[i] for r in runs] + [(m[i][class_permutation] if class_permutation else m[i]) for m in mirrored]
        return np.mean(estimates, axis=0)
    if task.kind is TaskKind.SEGMENTATION:
        estimates = [class_probs(r[i]) for r in runs] + [class_probs(m[i])[..., ::-1] for m in mirrored]
        return mask_of(np.mean(estimates, axis=0), size)
    if task.kind is TaskKind.DETECTION:
        return np.mean([box_of(r[i]) for r in runs] + [mirror_box(box_of(m[i])) for m in mirrored], axis=0)
    return np.mean([r[i] for r in runs] + [mirror_points(m[i], swap_points) for m in mirrored], axis=0)


def check(prediction, expected, task: TaskSpec) -> None:
    if task.kind is TaskKind.SEGMENTATION:
        assert prediction.mask.shape == expected.shape
        assert np.mean(prediction.mask == expected) >= 0.999, task.task_id
        return
    fields = prediction.fields
    if task.kind is TaskKind.CLASSIFICATION:
        np.testing.assert_allclose(fields["predicted_probs"], expected / expected.sum(), atol=1e-5)
        assert fields["predicted_class"] == int(np.argmax(expected))
    elif task.kind is TaskKind.DETECTION:
        np.testing.assert_allclose(fields["bbox_normalized"], expected, atol=1e-5)
    else:
        np.testing.assert_allclose(fields["predicted_points_normalized"], expected, atol=1e-5)


# --- behaviour ------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.task_id)
def test_ensemble_of_two_predicts_the_average_of_its_members_run_alone(ensemble_dir, members, images, task):
    predictor = Predictor.open(ensemble_dir, device="cpu", tta="none")
    assert isinstance(predictor.engine, EnsembleEngine)
    predictions = predictor.predict(task.task_id, images)
    runs = [raw(m, task.task_id, images) for m in members]
    for i, image in enumerate(images):
        check(predictions[i], reference(task, runs, [], image.shape[:2], i), task)
    # the average is not simply one member's answer
    alone = Predictor.open(members[0], device="cpu", tta="none").predict(task.task_id, images)
    if task.kind is TaskKind.CLASSIFICATION:
        assert any(not np.allclose(a.fields["predicted_probs"], p.fields["predicted_probs"], atol=1e-4)
                   for a, p in zip(alone, predictions))


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.task_id)
def test_flip_tta_averages_the_image_and_its_mirror_mirrored_back(members, images, task):
    predictor = Predictor.open(members[0], device="cpu", tta="flip")
    predictions = predictor.predict(task.task_id, images)
    runs = [raw(members[0], task.task_id, images)]
    rule = DEFAULT_FLIP_RULES.get(task.task_id, parse_rule("safe"))
    mirror_images = [np.ascontiguousarray(image[:, ::-1]) for image in images]
    mirrored = [raw(members[0], task.task_id, mirror_images)] if rule.flips else []
    for i, image in enumerate(images):
        expected = reference(task, runs, mirrored, image.shape[:2], i, swap_points=rule.rule == "permute_points")
        check(predictions[i], expected, task)


class BatchSpy:
    def __init__(self, engine):
        self.engine, self.sizes = engine, []
        self.description = "spy"

    def run(self, task, batch):
        self.sizes.append(len(batch))
        return self.engine.run(task, batch)


def test_an_unsafe_task_is_never_flipped_and_a_safe_one_runs_with_its_mirror_in_one_batch(members, images):
    predictor = Predictor.open(members[0], device="cpu", tta="flip")
    spy = BatchSpy(predictor.engine.engines[0])
    predictor.engine.engines[0] = spy
    flipped = predictor.predict("fetal_head_pos_cls", images)
    assert spy.sizes == [len(images)]
    plain = Predictor.open(members[0], device="cpu", tta="none").predict("fetal_head_pos_cls", images)
    assert [p.fields for p in flipped] == [p.fields for p in plain]
    predictor.predict("breast_3cls", images)
    assert spy.sizes == [len(images), 2 * len(images)]


def test_flip_rules_set_at_export_permute_the_mirror_classes_or_make_a_task_safe(members, images, tmp_path):
    from exporter.ensemble import export_ensemble

    out = tmp_path / "model"
    export_ensemble([members[0]], out, tta="flip", flip_rules={"fetal_head_pos_cls": PHANTOM_DIRECTION_PERMUTATION,
                                                               "IUGC": parse_rule("safe")})
    manifest = load_manifest(out)
    assert manifest.tta.mode == "flip"
    assert str(manifest.tta.flip_rules["fetal_head_pos_cls"]) == "permute_classes:4,3,2,1,0,7,6,5"
    predictor = Predictor.open(out, device="cpu")  # tta auto: the manifest's flip
    mirror_images = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    for task, permutation in ((OFFICIAL["fetal_head_pos_cls"], [4, 3, 2, 1, 0, 7, 6, 5]), (OFFICIAL["IUGC"], None)):
        predictions = predictor.predict(task.task_id, images)
        runs = [raw(members[0], task.task_id, images)]
        mirrored = [raw(members[0], task.task_id, mirror_images)]
        for i, image in enumerate(images):
            expected = reference(task, runs, mirrored, image.shape[:2], i, class_permutation=permutation)
            check(predictions[i], expected, task)


def test_an_ensemble_of_one_predicts_what_its_member_predicts(members, images, tmp_path):
    from exporter.ensemble import export_ensemble

    out = tmp_path / "one"
    export_ensemble([members[1]], out)
    assert [m.path for m in load_manifest(out).members] == ["members/0"]
    for task in ("cervix_multi", "fetal_femur", "thyroid_nodule_det", "breast_3cls"):
        mine = Predictor.open(out, device="cpu").predict(task, images)
        theirs = Predictor.open(members[1], device="cpu").predict(task, images)
        for a, b in zip(mine, theirs):
            if a.mask is not None:
                assert np.mean(a.mask == b.mask) >= 0.999
            else:
                for key in a.fields:
                    np.testing.assert_allclose(a.fields[key], b.fields[key], atol=1e-5)


def _edited_copy(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    data = json.loads((target / "manifest.json").read_text())
    edit(data)
    (target / "manifest.json").write_text(json.dumps(data))
    return target


def test_members_serving_other_task_lists_combine_and_a_task_meaning_another_thing_is_refused(members, tmp_path):
    from exporter.ensemble import EnsembleError, export_ensemble

    def drop_iugc(data):
        data["model"]["tasks"] = [t for t in data["model"]["tasks"] if t["task_id"] != "IUGC"]
        data["tasks"] = [t for t in data["tasks"] if t["task_id"] != "IUGC"]

    fewer = _edited_copy(members[1], tmp_path / "src" / "fewer", drop_iugc)
    manifest = export_ensemble([fewer, members[0]], tmp_path / "out" / "composite")
    assert [t.task_id for t in manifest.tasks] == [t.task_id for t in TASKS if t.task_id != "IUGC"] + ["IUGC"]
    assert manifest.members[0].tasks is not None and "IUGC" not in manifest.members[0].tasks
    assert manifest.members[1].tasks is None  # serves every task of the folder
    assert manifest.task("IUGC").path == [f"m1/{g}" for g in load_manifest(members[0]).task("IUGC").path]

    def three_classes(data):
        for key in ("tasks",):
            for t in data[key]:
                if t["task_id"] == "breast_3cls":
                    t["num_classes"] = 4
        for t in data["model"]["tasks"]:
            if t["task_id"] == "breast_3cls":
                t["num_classes"] = 4

    other = _edited_copy(members[1], tmp_path / "src" / "other", three_classes)
    out = tmp_path / "bad" / "bad"
    with pytest.raises(EnsembleError, match=r"member 1 \(other\) serves tasks of an earlier member with another kind "
                                            r"or size: breast_3cls \(classification 4, member 0: classification 3\)"):
        export_ensemble([members[0], other], out)
    assert list((tmp_path / "bad").iterdir()) == []  # neither the folder nor a staging folder


def test_members_preprocessing_differently_are_refused(members, tmp_path):
    from exporter.ensemble import EnsembleError, export_ensemble

    other = _edited_copy(members[1], tmp_path / "other",
                         lambda data: data["model"]["preprocessing"].update(mean=[0.5, 0.5, 0.5]))
    with pytest.raises(EnsembleError, match=r"member 1 \(other\) preprocesses images differently .*mean"):
        export_ensemble([members[0], other], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_flip_on_a_model_whose_every_task_is_unsafe_warns_once_and_does_not_flip(members, tmp_path, caplog):
    from exporter.ensemble import export_ensemble

    out = tmp_path / "unsafe"
    with caplog.at_level(logging.WARNING):
        export_ensemble([members[0]], out, tta="flip", flip_rules={t.task_id: UNSAFE for t in TASKS})
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == [
        "--tta flip: every task of this model is unsafe to flip; the runtime will not flip"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        engine = make_engine(ModelFolder.open(out), device="cpu", tta="flip")
    warnings = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "every task of this model is unsafe to flip" in warnings[0]
    assert isinstance(engine, EnsembleEngine) and engine.flip == {}


def test_a_single_model_without_tta_keeps_the_plain_engine_and_the_committed_manifest_loads_unchanged():
    root = Path(__file__).resolve().parent.parent
    folder = ModelFolder.open(root / "model_weights")
    assert folder.manifest.members is None and folder.manifest.tta is None
    assert isinstance(make_engine(folder, device="cpu"), FallbackEngine)
    assert isinstance(make_engine(folder, device="cpu", tta="flip"), EnsembleEngine)


def test_every_official_task_has_a_default_flip_rule():
    assert set(DEFAULT_FLIP_RULES) == {t.task_id for t in OFFICIAL_TASKS}
    assert str(DEFAULT_FLIP_RULES["fetal_head_pos_cls"]) == str(DEFAULT_FLIP_RULES["fetal_sacral_pos_cls"]) == "unsafe"
    assert str(DEFAULT_FLIP_RULES["fetal_femur"]) == str(DEFAULT_FLIP_RULES["FUGC"]) == "permute_points:1,0"
    fixed_orientation = {"cardiac_multi", "fetal_abdomen_multi", "head_symphysis_multi", "IUGC"}
    assert {t for t, rule in DEFAULT_FLIP_RULES.items() if rule.rule == "unsafe"} == fixed_orientation | {
        "fetal_head_pos_cls", "fetal_sacral_pos_cls"}
    mirrorable = [t for t in OFFICIAL_TASKS if t.kind is TaskKind.DETECTION
                  or (t.kind is TaskKind.SEGMENTATION and t.task_id not in fixed_orientation)]
    assert all(str(DEFAULT_FLIP_RULES[t.task_id]) == "safe" for t in mirrorable)


def test_export_cli_makes_an_ensemble_with_tta_and_rejects_bad_flip_rules(members, tmp_path, capsys):
    import export

    out = tmp_path / "ens"
    code = export.main([str(members[0]), str(members[1]), "--out", str(out), "--tta", "flip",
                        "--flip-rule", "IUGC=safe"])
    assert code == 0, capsys.readouterr().err
    manifest = load_manifest(out)
    assert [m.path for m in manifest.members] == ["members/0", "members/1"]
    assert (manifest.tta.mode, str(manifest.tta.flip_rules["IUGC"])) == ("flip", "safe")
    assert "ensemble of 2 members" in capsys.readouterr().out
    code = export.main([str(members[0]), str(members[1]), "--out", str(tmp_path / "x"), "--flip-rule", "nope=safe"])
    assert code == 2 and "does not have: nope" in capsys.readouterr().err
    single = tmp_path / "single"
    assert export.main([str(members[0]), "--out", str(single), "--tta", "flip"]) == 0
    manifest = load_manifest(single)
    assert manifest.members is None and manifest.tta.mode == "flip"
    assert isinstance(Predictor.open(single, device="cpu").engine, EnsembleEngine)  # tta auto: flip
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(members[0]), "--out", str(tmp_path / "y"), "--flip-rule", "fetal_femur=permute_points:1,2"])
    assert exit_info.value.code == 2
    assert "not a permutation" in capsys.readouterr().err


def test_the_batch_layout_serves_an_ensemble_with_flip_tta(ensemble_dir, tmp_path):
    from contract.imaging import read_image
    from inference.cli import main

    source = Path(__file__).resolve().parent.parent / "test" / "input"
    data = tmp_path / "input"
    shutil.copytree(source, data)
    served = {t.task_id for t in TASKS}
    for csv in (data / "csv_files").glob("*.csv"):
        if csv.stem not in served:
            csv.unlink()
    out = tmp_path / "output"
    assert main(["--input", str(data), "--output", str(out), "--weights", str(ensemble_dir), "--device", "cpu",
                 "--tta", "flip"]) == 0
    records = json.loads((out / "classification_predictions.json").read_text())
    assert {r["task_id"] for r in records} == {"breast_3cls", "fetal_head_pos_cls"}
    record = next(r for r in records if r["task_id"] == "breast_3cls")
    image = read_image(data / "csv_files" / record["image_path"])
    [expected] = Predictor.open(ensemble_dir, device="cpu", tta="flip").predict("breast_3cls", [image])
    np.testing.assert_allclose(record["predicted_probs"], expected.fields["predicted_probs"], atol=1e-6)
    assert len(list((out / "Segmentation").rglob("*.png"))) == 4  # fetal_head and cervix_multi, 2 rows each
