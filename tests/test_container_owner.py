"""The built image under the organisers' own run line, whoever owns the output folder.

FMC_UIA's organisers run `docker run --gpus all --rm -v IN:/input/:ro -v OUT:/output IMAGE`
(no --user, no --shm-size, no --network none). The image starts as root only to step down
to the owner of /output (scripts/entrypoint.sh): every file it writes belongs to OUT's owner,
none is world-writable, and the process keeps no capability. Every run here adds
`--shm-size 1m` (nothing may depend on shared memory; Docker's default is 64 MB) and no GPU
flag. test/input is compared with test/expected_output by test/compare.py.

Also: the CUDA provider's libraries resolve inside the image, and the check fails, naming
the library, once one is deleted (in a throw-away container).

Needs a usable container engine and the built image ($FMC_IMAGE); they skip without, except
under CI=true or REQUIRE_CONTAINER=1, where they fail. The engine must keep host uids on
bind mounts (Docker, rootful podman) for the ownership checks.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("FMC_IMAGE", "fmc-uia:latest")
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_CONTAINER") == "1"
INPUT = ROOT / "test" / "input"
EXPECTED = ROOT / "test" / "expected_output"
OTHER = (4242, 4242)
SITE = "/opt/venv/lib/python3.11/site-packages"
# Loaded by Python at start-up when on PYTHONPATH: reports the process's identity, so the
# privileges the entrypoint leaves are observed from outside, without a hook in the image.
PROBE = '''import os, sys
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print("PROBE", os.getuid(), os.getgid(), sorted(os.getgroups()), status["CapEff"].strip(),
      status["CapBnd"].strip(), status["NoNewPrivs"].strip(), file=sys.stderr)
'''


@pytest.fixture(scope="module")
def engine() -> list[str]:
    found = subprocess.run(["bash", str(ROOT / "scripts/container_engine.sh")], capture_output=True, text=True)
    reason = None
    if found.returncode != 0:
        reason = found.stderr.strip() or "no usable container engine"
    elif subprocess.run([*shlex.split(found.stdout), "image", "inspect", IMAGE], capture_output=True).returncode:
        reason = f"no image {IMAGE}: build it with scripts/build_image.sh"
    if reason:
        if REQUIRED:
            pytest.fail(f"{reason} (required here: CI=true or REQUIRE_CONTAINER=1)")
        pytest.skip(reason)
    return shlex.split(found.stdout)


@pytest.fixture(scope="module")
def root_engine(engine: list[str]) -> list[str]:
    """The engine, for tests that chown output folders to other uids (root only; CI is root)."""
    if os.getuid() != 0:
        reason = "the ownership checks chown folders to other uids: run them as root"
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    return engine


def organisers_run(engine: list[str], output: Path | None, *options: str,
                   args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`run --rm -v IN:/input/:ro -v OUT:/output IMAGE`, plus --shm-size 1m and ``options``."""
    command = [*engine, "run", "--rm", "--shm-size", "1m", *options, "-v", f"{INPUT}:/input/:ro"]
    if output is not None:
        command += ["-v", f"{output}:/output"]
    return subprocess.run([*command, IMAGE, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)


def owned_folder(path: Path, uid: int, gid: int, mode: int) -> Path:
    path.mkdir()
    os.chown(path, uid, gid)
    path.chmod(mode)
    return path


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def _assert_predictions(output: Path, uid: int, gid: int) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "test/compare.py"), str(EXPECTED), str(output)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    paths = list(output.rglob("*"))
    assert paths, "nothing written"
    wrong = [f"{p.relative_to(output)} {p.stat().st_uid}:{p.stat().st_gid}" for p in paths
             if (p.stat().st_uid, p.stat().st_gid) != (uid, gid)]
    assert not wrong, f"not owned by OUT's owner {uid}:{gid}: {wrong[:5]}"
    writable = [str(p.relative_to(output)) for p in paths if p.stat().st_mode & 0o002]
    assert not writable, f"world-writable: {writable[:5]}"
    private = [str(p.relative_to(output)) for p in paths if p.is_file() and not p.stat().st_mode & 0o004]
    assert not private, f"not readable by others (the platform reads them): {private[:5]}"


@pytest.mark.parametrize(("uid", "gid", "mode"), [(0, 0, 0o755), (*OTHER, 0o755), (0, 0, 0o777)],
                         ids=["root-755", "other-uid-755", "root-777"])
def test_organisers_line_writes_every_prediction_as_the_owner_of_out(root_engine, tmp_path, uid, gid, mode):
    output = owned_folder(tmp_path / "out", uid, gid, mode)
    result = organisers_run(root_engine, output)
    assert result.returncode == 0, result.stdout[-3000:]
    _assert_predictions(output, uid, gid)


def test_user_flag_runs_as_that_user(root_engine, tmp_path):
    output = owned_folder(tmp_path / "out", *OTHER, 0o755)
    result = organisers_run(root_engine, output, "--user", "%d:%d" % OTHER, "--network", "none",
                            "--read-only", "--tmpfs", "/tmp")
    assert result.returncode == 0, result.stdout[-3000:]
    _assert_predictions(output, *OTHER)


@pytest.mark.parametrize(("uid", "gid"), [(0, 0), OTHER], ids=["root-owned", "other-uid"])
def test_the_work_runs_without_privileges(root_engine, tmp_path, uid, gid):
    """Root steps down before Python starts: OUT's owner, no groups, no capabilities, no_new_privs."""
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o755)
    (probe / "sitecustomize.py").write_text(PROBE)
    (probe / "sitecustomize.py").chmod(0o644)
    output = owned_folder(tmp_path / "out", uid, gid, 0o755)
    result = organisers_run(root_engine, output, "-e", "PYTHONPATH=/probe:/opt/app", "-v", f"{probe}:/probe:ro",
                            args=("--help",))
    assert result.returncode == 0, result.stdout
    probes = [line.split(" ", 1)[1] for line in _lines(result) if line.startswith("PROBE ")]
    zero = "0" * 16
    assert probes == [f"{uid} {gid} [] {zero} {zero} 1"], result.stdout


def test_missing_output_is_one_line(engine):
    result = organisers_run(engine, None)
    assert result.returncode == 1, result.stdout
    assert len(_lines(result)) == 1 and "/output" in result.stdout, result.stdout


def test_read_only_output_is_one_line(root_engine, tmp_path):
    output = owned_folder(tmp_path / "out", *OTHER, 0o755)
    result = organisers_run(root_engine, None, "-v", f"{output}:/output:ro")
    assert result.returncode == 1, result.stdout
    assert len(_lines(result)) == 1 and "/output" in result.stdout, result.stdout
    assert not any(output.iterdir())


@pytest.mark.parametrize("how", ["organisers-line", "user-flag"])
def test_unreadable_model_folder_is_one_line_naming_it(root_engine, tmp_path, how):
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(ROOT / "model_weights" / "manifest.json", model)
    model.chmod(0o700)  # owned by root: unreadable for uid 4242
    output = owned_folder(tmp_path / "out", *OTHER, 0o755)
    user = ("--user", "%d:%d" % OTHER) if how == "user-flag" else ()
    result = organisers_run(root_engine, output, *user, "-v", f"{model}:/opt/ml/model:ro")
    assert result.returncode == 1, result.stdout[-3000:]
    assert len(_lines(result)) == 1 and "/opt/ml/model" in result.stdout, result.stdout
    assert not any(output.iterdir()), "a run that cannot read its model must write nothing"


def _check_cuda(engine: list[str], *before: str) -> subprocess.CompletedProcess[str]:
    script = " && ".join([*before, "exec python /opt/app/scripts/check_cuda_libs.py"])
    return subprocess.run([*engine, "run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE, "-c", script],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def test_cuda_provider_libraries_resolve(engine):
    result = _check_cuda(engine)
    assert result.returncode == 0, result.stdout
    assert "ok: the CUDA provider" in result.stdout and "libcudnn.so.9" in result.stdout, result.stdout


@pytest.mark.parametrize("library", ["cublas/lib/libcublasLt.so.12", "cudnn/lib/libcudnn_cnn.so.9",
                                     "cufft/lib/libcufft.so.11"])
def test_cuda_check_fails_naming_a_removed_library(engine, library):
    """In a throw-away container, one NVIDIA library deleted: the check must name it and fail."""
    result = _check_cuda(engine, f"rm {SITE}/nvidia/{library}")
    name = Path(library).name
    assert result.returncode == 1, result.stdout
    failures = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert any(name in line for line in failures), result.stdout


def test_cuda_check_fails_when_a_library_is_replaced(engine):
    """Another package writing over a CUDA 12 wheel's file (as PyPI's CUDA 13 torch does with
    cuDNN) leaves loadable libraries of the wrong build: the wheel's RECORD tells."""
    result = _check_cuda(engine, f"printf x >> {SITE}/nvidia/cudnn/lib/libcudnn_graph.so.9")
    assert result.returncode == 1, result.stdout
    assert any("libcudnn_graph.so.9 was replaced" in line for line in result.stdout.splitlines()
               if "FAIL" in line), result.stdout
