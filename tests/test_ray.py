"""The Ray Data entry point on a local 2-CPU Ray cluster writes what one python -m inference run writes.

Needs the optional dependency (requirements-ray.txt; ``make dev-venv`` installs it). The
input is the sample set plus one row whose image is missing, so an actor's failure path and
the driver's fallback prediction are compared too. About 30-50 s on 2 cores (Ray's start).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from inference.cli import main as cli_main
from inference.errors import EXIT_ROWS_FAILED

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-ray.txt "
                                        "(make dev-venv installs it)")

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "model_weights"
MISSING = ("image_path,task_id,task_name,num_classes,mask_path\n"
           "../Segmentation/Two/lung/images/missing.png,lung,segmentation,2,../Segmentation/Two/lung/masks/missing.png\n"
           "../Classification/organ_cls/images/missing.png,organ_cls,classification,6,\n")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_ray_job_with_two_actors_equals_one_run(local_cluster, tmp_path):
    from inference.cli import main as cli_main_ray

    def ray_main(argv):
        return cli_main_ray(["ray", *argv])

    inp = tmp_path / "input"
    shutil.copytree(REPO / "test" / "input", inp)
    (inp / "csv_files" / "zz_missing.csv").write_text(MISSING)
    args = ["--input", str(inp), "--weights", str(WEIGHTS), "--device", "cpu"]
    assert cli_main([*args, "--output", str(tmp_path / "single")]) == EXIT_ROWS_FAILED
    assert ray_main([*args, "--output", str(tmp_path / "ray"), "--actors", "2", "--batch-size", "4"]) == EXIT_ROWS_FAILED
    single, by_ray = snapshot(tmp_path / "single"), snapshot(tmp_path / "ray")
    assert "Segmentation/Two/lung/masks/missing.png" in by_ray  # the fallback mask of the failed row
    assert sorted(by_ray) == sorted(single)
    assert by_ray == single
