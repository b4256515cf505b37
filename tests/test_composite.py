"""Composite model folders: members serving different task lists, per-task weights, TTA and mask postprocessing.

Two tiny networks with different task lists (P: fetal_head, fetal_plane_cls, fetal_femur,
breast_3cls; Q: fetal_head, fetal_plane_cls, thyroid_nodule_det) are exported once and joined
in one folder whose manifest then gets, per task: fetal_head served by both with weights 1 and
3 and postprocessed; thyroid_nodule_det flipped under ``--tta auto``; the others as exported.
The reference is computed here from each member's own folder run alone (the plain ONNX
engine), averaged by hand; every way of running the folder (the Python API, the batch layout,
shards merged, a Grand-Challenge case, Ray) must give it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from contract.ensemble import MemberWeight
from contract.imaging import read_image
from contract.manifest import ModelFolder, load_manifest, write_manifest
from contract.postprocess import MaskPostprocess, postprocess_mask
from contract.tasks import TaskRegistry
from inference.cli import main
from tests.test_ensemble_tta import box_of, class_probs, mask_of, mirror_box, raw

OFFICIAL = TaskRegistry.official()
P_TASKS = ["fetal_head", "fetal_plane_cls", "fetal_femur", "breast_3cls"]
Q_TASKS = ["fetal_head", "fetal_plane_cls", "thyroid_nodule_det"]
POST = MaskPostprocess(largest="per_class", fill_holes=True)
REPO = Path(__file__).resolve().parent.parent
CASES = {"fetal_head": "seg_fetal_head", "fetal_plane_cls": "cls_fetal_plane_cls_rgb",
         "thyroid_nodule_det": "det_thyroid_nodule_det_tif", "fetal_femur": "reg_fetal_femur_float"}


def _export(tasks: list[str], seed: int, out: Path) -> Path:
    import torch

    from exporter import export_model
    from network import build_model
    from tests.conftest import make_tiny_config

    torch.manual_seed(seed)
    model = build_model(make_tiny_config([OFFICIAL[t] for t in tasks]))
    export_model(model.eval(), out, source={"checkpoint": f"tiny {seed}"})
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    from exporter.ensemble import export_ensemble

    root = tmp_path_factory.mktemp("composite")
    p, q = _export(P_TASKS, 1, root / "P"), _export(Q_TASKS, 2, root / "Q")
    composite = root / "composite"
    export_ensemble([p, q], composite)
    manifest = load_manifest(composite)
    manifest = manifest.model_copy(update={
        "composition": {"fetal_head": [MemberWeight(member=0, weight=1.0), MemberWeight(member=1, weight=3.0)]},
        "tta": manifest.tta.model_copy(update={"tasks": {"thyroid_nodule_det": "flip"}}),
        "tasks": [t.model_copy(update={"postprocess": POST}) if t.task_id == "fetal_head" else t for t in manifest.tasks],
    })
    write_manifest(type(manifest).model_validate(manifest.model_dump()), composite)
    return {"P": p, "Q": q, "composite": composite}


def expected(folders: dict[str, Path], task_id: str, image: np.ndarray):
    """The composite's prediction of ``image`` for ``task_id``, from the members' raw outputs."""
    size = image.shape[:2]
    if task_id == "fetal_head":  # weights 1 (P) and 3 (Q), then the postprocessing
        probs = [class_probs(raw(folders[m], task_id, [image])[0]) for m in ("P", "Q")]
        return postprocess_mask(mask_of((probs[0] + 3 * probs[1]) / 4, size), POST)
    if task_id == "fetal_plane_cls":  # both members, equal weights
        return np.mean([raw(folders[m], task_id, [image])[0] for m in ("P", "Q")], axis=0)
    if task_id == "thyroid_nodule_det":  # Q alone, flipped (safe): image and mirror, boxes averaged
        plain = box_of(raw(folders["Q"], task_id, [image])[0])
        mirrored = mirror_box(box_of(raw(folders["Q"], task_id, [np.ascontiguousarray(image[:, ::-1])])[0]))
        return (plain + mirrored) / 2
    return raw(folders["P"], task_id, [image])[0]  # fetal_femur, breast_3cls: P alone, no TTA


def check(result: dict, want, task_id: str) -> None:
    if "mask" in result:
        assert result["mask"].shape == want.shape and np.mean(result["mask"] == want) >= 0.999, task_id
    elif "predicted_probs" in result:
        np.testing.assert_allclose(result["predicted_probs"], want / want.sum(), atol=1e-5)
    elif "bbox_normalized" in result:
        np.testing.assert_allclose(result["bbox_normalized"], want, atol=1e-5)
    else:
        np.testing.assert_allclose(result["predicted_points_normalized"], want, atol=1e-5)


@pytest.fixture(scope="module")
def batch_input(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("composite_input") / "input"
    shutil.copytree(REPO / "test" / "input", data)
    for csv in (data / "csv_files").glob("*.csv"):
        if csv.stem not in set(P_TASKS) | set(Q_TASKS):
            csv.unlink()
    return data


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_the_composite_manifest_lists_each_members_tasks_and_the_union(folders):
    manifest = ModelFolder.open(folders["composite"], verify_hashes=True).manifest
    assert [t.task_id for t in manifest.tasks] == P_TASKS + ["thyroid_nodule_det"]
    assert manifest.members[0].tasks == P_TASKS and manifest.members[1].tasks == Q_TASKS
    assert manifest.tta.mode_of("thyroid_nodule_det") == "flip" and manifest.tta.mode_of("fetal_head") == "none"


def test_the_api_predicts_each_task_from_its_members(folders):
    from inference import api

    images = [np.clip(np.random.default_rng(i).normal(120, 40, (70 + 9 * i, 90, 3)), 0, 255).astype(np.uint8)
              for i in range(2)]
    model = api.load(folders["composite"], device="cpu")
    for task_id in P_TASKS + ["thyroid_nodule_det"]:
        for image, result in zip(images, model.predict(images, [task_id] * len(images))):
            check(result, expected(folders, task_id, image), task_id)
    # the weights and the postprocessing change the masks of these images (else the test proves nothing)
    for image, result in zip(images, model.predict(images, ["fetal_head"] * len(images))):
        probs = [class_probs(raw(folders[m], "fetal_head", [image])[0]) for m in ("P", "Q")]
        assert not np.array_equal(result["mask"], mask_of((probs[0] + 3 * probs[1]) / 4, image.shape[:2]))
        assert not np.array_equal(mask_of((probs[0] + 3 * probs[1]) / 4, image.shape[:2]),
                                  mask_of((probs[0] + probs[1]) / 2, image.shape[:2]))


def test_batch_layout_shards_and_cases_give_the_same_predictions(folders, batch_input, tmp_path):
    from inference import api

    weights = ["--weights", str(folders["composite"]), "--device", "cpu"]
    single = tmp_path / "single"
    assert main(["--input", str(batch_input), "--output", str(single), *weights]) == 0
    model = api.load(folders["composite"], device="cpu")
    csv_dir = batch_input / "csv_files"
    for kind_file in ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json"):
        for record in json.loads((single / kind_file).read_text()):
            image = read_image(csv_dir / record["image_path"])
            [mine] = model.predict([image], [record["task_id"]], image_paths=[record["image_path"]])
            assert mine == record
            check(record, expected(folders, record["task_id"], image), record["task_id"])
    rows = [line.split(",") for line in (csv_dir / "fetal_head.csv").read_text().splitlines()[1:] if line.strip()]
    assert rows
    for image_path, *_, mask_path in rows:
        written = np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(single / mask_path.replace("../", "")))))
        check({"mask": written}, expected(folders, "fetal_head", read_image(csv_dir / image_path)), "fetal_head")
    for i in range(2):
        assert main(["--input", str(batch_input), "--output", str(tmp_path / f"shard{i}"), *weights,
                     "--shard", f"{i}/2"]) == 0
    assert main(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--output", str(tmp_path / "merged")]) == 0
    assert snapshot(tmp_path / "merged") == snapshot(single)
    for task_id, case in CASES.items():
        out = tmp_path / "case" / case
        assert main(["--input", str(REPO / "test" / "gc" / case / "input"), "--output", str(out), *weights]) == 0
        [image_file] = (REPO / "test" / "gc" / case / "input" / "images" / "ultrasound-image").iterdir()
        from inference.layouts.case_inputs import read_case

        rgb = read_case(REPO / "test" / "gc" / case / "input").image.rgb
        [result] = model.predict([rgb], [task_id])
        written = [p for p in out.rglob("*") if p.is_file()]
        assert len(written) == 1, written
        if "mask" in result:
            assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(written[0]))).reshape(result["mask"].shape),
                                  result["mask"])
        else:
            assert json.loads(written[0].read_text()) == result


@pytest.mark.slow  # 30-60 s: a local Ray instance starts
def test_the_ray_job_on_a_composite_folder_equals_one_run(folders, batch_input, tmp_path):
    ray = pytest.importorskip("ray")
    import logging

    from inference.scale.ray_job import main as ray_main

    args = ["--input", str(batch_input), "--weights", str(folders["composite"]), "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "single")]) == 0
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        assert ray_main([*args, "--output", str(tmp_path / "ray"), "--actors", "1", "--batch-size", "4"]) == 0
    finally:
        ray.shutdown()
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "single")


def test_tta_auto_follows_the_per_task_choice_and_none_or_flip_override_it_for_every_task(folders):
    from contract.flip import DEFAULT_FLIP_RULES
    from inference.engines.factory import make_engine

    folder = ModelFolder.open(folders["composite"])
    assert set(make_engine(folder, device="cpu", tta="auto").flip) == {"thyroid_nodule_det"}
    assert make_engine(folder, device="cpu", tta="none").flip == {}
    flipped = {t for t in P_TASKS + Q_TASKS if DEFAULT_FLIP_RULES[t].flips}
    assert set(make_engine(folder, device="cpu", tta="flip").flip) == flipped and len(flipped) == 5
