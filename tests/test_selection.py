"""Selection per task on labelled data (``python export.py MEMBER... --select-on VAL_DIR``).

End to end: two members made from the default model (``model_weights/``), each with two heads
wrecked (``tests/wrecked_members.py``: A loses fetal_head and thyroid_nodule_det, B loses
breast_2cls and fetal_femur), are exported together with ``--select-on`` a phantom validation
folder of 12 labelled rows per task (seed 11); on a separate phantom test folder (seed 12)
each wrecked task must score like its good member, and every kind's official score must be
at least that of each member alone and of their plain ensemble. The guard is checked on
synthetic estimates (no network): too few rows, noise, a tie, a clear winner.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.manifest import TaskEntry, load_manifest
from contract.tasks import TaskKind
from evaluation import evaluate_official
from evaluation.labels import LabelRow
from selection.cache import TaskData
from selection.candidates import Candidate
from selection.choose import Guard, Selector
from selection.score import SCORERS

REPO = Path(__file__).resolve().parent.parent
TASKS = ["fetal_head", "breast_2cls", "thyroid_nodule_det", "fetal_femur"]
WRECKED = {"A": ["fetal_head", "thyroid_nodule_det"], "B": ["breast_2cls", "fetal_femur"]}
GOOD = {task: ("B" if task in WRECKED["A"] else "A") for task in TASKS}
HEADLINE = {"segmentation": ("dice", 1), "classification": ("auc", 1), "detection": ("iou", 1), "Regression": ("mre", -1)}


# --- the guard, on synthetic estimates ----------------------------------------------------------------

def synthetic(labels: list[int], members: dict[int, np.ndarray]) -> TaskData:
    entry = TaskEntry(task_id="t", kind=TaskKind.CLASSIFICATION, num_classes=2, path=["g"], outputs={"probs": "p"})
    rows = [LabelRow(csv_file="t.csv", row=i + 1, line=i + 2, image_path=f"{i}.png", task_id="t", kind=TaskKind.CLASSIFICATION,
                     num_classes=2, image_file=Path(f"{i}.png"), label=label) for i, label in enumerate(labels)]
    data = TaskData(entry, rows, [(10, 10)] * len(rows), [None] * len(rows), None)
    for member, probs in members.items():
        data.estimates[member] = [probs.astype(np.float64)]
        data.seconds[member] = 0.01
    return data


def probs_of(p1: np.ndarray) -> np.ndarray:
    return np.stack([1 - p1, p1], axis=1)


def decide(data: TaskData, guard: Guard | None = None):
    guard = guard or Guard()
    selector = Selector(data, SCORERS[TaskKind.CLASSIFICATION], "auc", [], sorted(data.estimates), None)
    return selector.decide(guard)


def test_a_clear_winner_is_chosen_and_too_few_rows_keep_the_default():
    rng = np.random.default_rng(0)
    labels = [0, 1] * 8
    good = probs_of(np.clip(np.array(labels) * 0.8 + 0.1 + rng.normal(0, 0.05, 16), 0.01, 0.99))
    bad = probs_of(rng.random(16))
    decision = decide(synthetic(labels, {0: good, 1: bad}))
    assert decision.chosen == Candidate(((0, 1.0),)) and decision.held_out["choice"] > decision.held_out["default"]
    few = decide(synthetic(labels[:6], {0: good[:6], 1: bad[:6]}))
    assert few.chosen == Candidate(((0, 1.0), (1, 1.0))) and "fewer than 8" in few.reason


def keypoint_data(errors: dict[int, list[float]]) -> TaskData:
    """One keypoint per row, truth at the centre of a 100 x 100 image; member m misses it by errors[m][i] px along x."""
    entry = TaskEntry(task_id="k", kind=TaskKind.REGRESSION, num_classes=1, path=["g"], outputs={"points": "p"})
    count = len(next(iter(errors.values())))
    rows = [LabelRow(csv_file="k.csv", row=i + 1, line=i + 2, image_path=f"{i}.png", task_id="k", kind=TaskKind.REGRESSION,
                     num_classes=1, image_file=Path(f"{i}.png"), points=[50.0, 50.0]) for i in range(count)]
    data = TaskData(entry, rows, [(100, 100)] * count, [None] * count, None)
    for member, miss in errors.items():
        data.estimates[member] = [np.stack([0.5 + np.asarray(miss) / 100, np.full(count, 0.5)], axis=1)]
        data.seconds[member] = 0.01
    return data


def test_a_choice_that_wins_only_through_one_lucky_row_is_refused():
    # member 0 misses by 10 px everywhere; member 1 by 10.5 px, except one lucky row where it hits: on all the
    # rows member 1 alone looks best (mean 9.6 px against 9.8 for the default, both members averaged), but
    # chosen without the lucky row it is worse on the rows it was not chosen on
    data = keypoint_data({0: [10.0] * 12, 1: [0.0] + [10.5] * 11})
    selector = Selector(data, SCORERS[TaskKind.REGRESSION], "mre", [], [0, 1], None)
    decision = selector.decide(Guard(folds=4))
    assert decision.on_all_rows == Candidate(((1, 1.0),))
    assert decision.chosen == decision.default == Candidate(((0, 1.0), (1, 1.0)))
    assert decision.held_out["choice"] > decision.held_out["default"] and "no choice beat the default" in decision.reason


def test_a_tie_goes_to_the_cheaper_configuration():
    labels = [0, 1] * 10
    same = probs_of(np.where(np.array(labels) == 1, 0.9, 0.2))
    tie = decide(synthetic(labels, {0: same, 1: same.copy()}))
    assert tie.chosen == Candidate(((0, 1.0),)) and "cheaper" in tie.reason  # one run per image instead of two


# --- end to end ---------------------------------------------------------------------------------------

def _phantoms(out: Path, seed: int) -> Path:
    from phantoms.cli import main as phantoms

    assert phantoms(["--out", str(out), "--seed", str(seed), "--per-task", "12", "--tasks", ",".join(TASKS),
                     "--size-scale", "0.5", "--quiet"]) == 0
    return out


def _run(model: Path, data: Path, out: Path, tta: str = "auto") -> dict:
    from inference.cli import main

    assert main(["--input", str(data), "--output", str(out), "--weights", str(model), "--device", "cpu",
                 "--tta", tta]) == 0
    report = evaluate_official(data, out)
    return {t.task_id: t.metrics for t in report.tasks} | {k.kind: k.metrics for k in report.kinds}


@pytest.fixture(scope="module")
def selected(tmp_path_factory) -> dict:
    import export
    from exporter.ensemble import export_ensemble
    from tests.wrecked_members import wrecked_copy

    root = tmp_path_factory.mktemp("selection")
    members = {name: wrecked_copy(REPO / "model_weights", root / name, tasks, seed)
               for seed, (name, tasks) in enumerate(WRECKED.items(), start=1)}
    val, test = _phantoms(root / "val", 11), _phantoms(root / "test", 12)
    chosen = root / "chosen"
    assert export.main([str(members["A"]), str(members["B"]), "--select-on", str(val), "--out", str(chosen)]) == 0
    plain = root / "plain"
    export_ensemble([members["A"], members["B"]], plain)
    scores = {name: _run(folder, test, root / f"pred_{name}") for name, folder in
              (("chosen", chosen), ("A", members["A"]), ("B", members["B"]), ("plain", plain))}
    return {"root": root, "chosen": chosen, "val": val, "scores": scores}


def test_each_wrecked_task_scores_like_its_good_member_on_held_out_phantoms(selected):
    scores = selected["scores"]
    for task, good in GOOD.items():
        ours = scores["chosen"][task]
        theirs = scores[good][task]
        bad = scores["B" if good == "A" else "A"][task]
        for metric in ("dice", "auc", "iou", "f1", "mre"):
            if metric in ours:
                sign = -1 if metric == "mre" else 1
                assert sign * ours[metric] >= sign * theirs[metric] - (1.0 if metric == "mre" else 0.02), (task, metric)
                if metric in ("dice", "iou", "mre"):  # far from the wrecked member
                    assert sign * (ours[metric] - bad[metric]) > (5.0 if metric == "mre" else 0.2), (task, metric)


def test_every_kind_beats_each_member_alone_and_their_plain_ensemble(selected):
    scores = selected["scores"]
    for other in ("A", "B", "plain"):
        gains = []
        for kind, (metric, sign) in HEADLINE.items():
            ours, theirs = scores["chosen"][kind][metric], scores[other][kind][metric]
            tolerance = 0.5 if metric == "mre" else 0.005
            assert sign * ours >= sign * theirs - tolerance, (other, kind, metric, ours, theirs)
            gains.append(sign * (ours - theirs) / (10.0 if metric == "mre" else 1.0))
        assert sum(gains) > 0.05, (other, gains)


def test_the_manifest_holds_the_choice_and_the_report_explains_it(selected):
    manifest = load_manifest(selected["chosen"])
    names = [m.source.get("name") for m in manifest.members]
    assert names == ["A", "B"] and manifest.members[0].tasks is None
    for task, good in GOOD.items():
        assert [names[w.member] for w in manifest.composition[task]] == [good], task
    assert set(manifest.tta.tasks) == set(TASKS) and manifest.tta.mode == "none"
    assert "IUGC" not in manifest.composition  # no validation rows: the default (both members)
    report = json.loads((selected["chosen"] / "selection_report.json").read_text())
    assert (selected["chosen"] / "selection_report.md").read_text().startswith("# Selection report")
    tasks = {t["task_id"]: t for t in report["tasks"]}
    for task in TASKS:
        entry = tasks[task]
        assert entry["rows"] == 12 and entry["chosen"]["members"] == [GOOD[task]]
        labels = {c["label"] for c in entry["candidates"]}
        assert {"A, no TTA", "B, no TTA", "A + B, no TTA"} <= labels
        assert all(set(c["metrics"]) >= {entry["metric"]} and c["seconds_per_image"] > 0 for c in entry["candidates"])
        gain = -entry["gain"]["all_rows"] if entry["lower_is_better"] else entry["gain"]["all_rows"]
        runs = entry["cost"]["runs_per_image"]
        assert runs[0] == 2 and (gain > 0 or runs[1] < runs[0]), task  # better, or as good and cheaper
    assert tasks["IUGC"]["rows"] == 0 and tasks["IUGC"]["reason"].startswith("no usable validation rows")


def test_the_selection_scores_are_the_official_scores_of_the_chosen_folder(selected):
    report = json.loads((selected["chosen"] / "selection_report.json").read_text())
    official = _run(selected["chosen"], selected["val"], selected["root"] / "pred_val")
    for entry in report["tasks"]:
        if entry["rows"]:
            for metric, value in entry["chosen"]["metrics"].items():
                assert value == pytest.approx(official[entry["task_id"]][metric], rel=1e-3, abs=1e-3), \
                    (entry["task_id"], metric)


# --- members of every sort, and mistakes ------------------------------------------------------------

def test_a_checkpoint_beside_an_exported_folder_is_exported_then_chosen_among(tiny_model, tiny_model_dir, tmp_path,
                                                                              capsys):
    import export
    from training.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "tiny.pt", {"config": tiny_model.config.model_dump(mode="json"),
                                                        "state_dict": tiny_model.state_dict()})
    from phantoms.cli import main as phantoms

    val = tmp_path / "val"
    assert phantoms(["--out", str(val), "--seed", "5", "--per-task", "8", "--tasks", "breast_2cls,fetal_femur",
                     "--size-scale", "0.3", "--quiet"]) == 0
    out = tmp_path / "chosen"
    code = export.main([str(tiny_model_dir), str(checkpoint), "--select-on", str(val), "--out", str(out),
                        "--select-metric", "classification=f1", "--max-runs", "1", "--postprocess-candidates", "none"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "selection_report.json").read_text())
    assert [m["name"] for m in report["members"]] == ["model_weights", "tiny.pt"]
    assert report["options"]["metrics"]["classification"] == "f1" and report["options"]["max_runs"] == 1
    tasks = {t["task_id"]: t for t in report["tasks"]}
    for task in ("breast_2cls", "fetal_femur"):  # the same weights twice: a tie, so one member, no TTA
        assert tasks[task]["chosen"]["runs_per_image"] == 1 and all(c["runs_per_image"] == 1
                                                                    for c in tasks[task]["candidates"])
    # --max-runs 1: the 25 tasks without validation rows cannot keep both members either, so every task runs
    # the first member alone and the folder is a single model
    manifest = load_manifest(out)
    assert manifest.members is None and set(manifest.tta.tasks.values()) == {"none"} and len(manifest.tta.tasks) == 27
    assert "over --max-runs 1" in tasks["IUGC"]["reason"]


def test_mistakes_are_one_line_with_exit_status_2_and_nothing_written(tiny_model_dir, tmp_path, capsys):
    import export

    out = tmp_path / "out"
    cases = [
        ([str(tiny_model_dir), "--select-on", str(tmp_path / "nowhere"), "--out", str(out)], "has no csv_files/ folder"),
        ([str(tiny_model_dir), "--select-on", str(tmp_path), "--out", str(out), "--select-metric",
          "segmentation=auc"], "segmentation tasks are scored with dice, hd, not 'auc'"),
        ([str(tiny_model_dir), "--select-on", str(tmp_path), "--out", str(out), "--postprocess-candidates",
          "largest"], "step 'largest' is not one of"),
    ]
    for argv, message in cases:
        assert export.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("export.py: error: ") and message in err, err
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(tiny_model_dir), "--select-on", str(tmp_path), "--out", str(out), "--select-metric", "x"])
    assert exit_info.value.code == 2
    assert not out.exists()
