"""The WITH_TORCH=1 image: the PyTorch fallback shares ONNX Runtime's CUDA 12 libraries.

Runs against $FMC_IMAGE when it was built with the fallback (label
org.fmc-uia.with-torch=1) and skips on the default image, except under FMC_EXPECT_TORCH=1
(`make test` sets it for the torch image), where an image without torch fails. No GPU is
needed: loading the libraries does not touch one. The image's test cases run through
`--engine torch` and through `--engine auto` with an encoder ONNX Runtime cannot load in
test/run_test.sh (--engine torch, --onnx-unloadable), which `make test` runs first.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("FMC_IMAGE", "fmc-uia:latest")
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_CONTAINER") == "1"
EXPECT_TORCH = os.environ.get("FMC_EXPECT_TORCH") == "1"
SITE = "/opt/venv/lib/python3.11/site-packages"
LABEL = "org.fmc-uia.with-torch"

# In one process, as a run that falls back would: ONNX Runtime's preload first, then torch
# and its cuDNN; then every CUDA library mapped, by file. One file per library means shared.
SHARED_PROBE = """
import importlib.metadata, json, onnxruntime, torch
onnxruntime.preload_dlls(cuda=True, cudnn=True, msvc=False)
cudnn = torch.backends.cudnn.version()
mapped = {}
for line in open("/proc/self/maps"):
    path = line.split()[-1]
    name = path.rsplit("/", 1)[-1]
    if name.startswith(("libcudnn", "libcublas", "libcudart", "libcufft", "libcurand", "libnvrtc", "libnvJitLink")):
        mapped.setdefault(name.split(".so")[0], set()).add(path)
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
                  "cudnn_wheel": importlib.metadata.version("nvidia-cudnn-cu12"),
                  "mapped": {k: sorted(v) for k, v in mapped.items()}}))
"""


@pytest.fixture(scope="module")
def engine() -> list[str]:
    """The engine's command line, once $FMC_IMAGE is known to be a torch image."""
    found = subprocess.run(["bash", str(ROOT / "scripts/container_engine.sh")], capture_output=True, text=True)
    if found.returncode != 0:
        _unavailable(found.stderr.strip() or "no usable container engine")
    command = shlex.split(found.stdout)
    inspect = subprocess.run([*command, "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}',
                              IMAGE], capture_output=True, text=True)
    if inspect.returncode != 0:
        _unavailable(f"no image {IMAGE}: build it with WITH_TORCH=1 scripts/build_image.sh")
    if inspect.stdout.strip() != "1":
        if EXPECT_TORCH:
            pytest.fail(f"{IMAGE} was built without the PyTorch fallback ({LABEL}={inspect.stdout.strip()!r}), "
                        "but FMC_EXPECT_TORCH=1")
        pytest.skip(f"{IMAGE} is not a WITH_TORCH=1 image")
    return command


def _unavailable(reason: str) -> None:
    if REQUIRED or EXPECT_TORCH:
        pytest.fail(f"{reason} (required: CI=true, REQUIRE_CONTAINER=1 or FMC_EXPECT_TORCH=1)")
    pytest.skip(reason)


def _sh(engine: list[str], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*engine, "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                           "--entrypoint", "sh", IMAGE, "-c", script],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def test_torch_and_onnx_runtime_load_the_same_cuda_12_libraries(engine):
    result = _sh(engine, f"exec python -c '{SHARED_PROBE}'")
    assert result.returncode == 0, result.stdout
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["cuda"].startswith("12."), facts
    major, minor, patch = (int(x) for x in facts["cudnn_wheel"].split(".")[:3])
    assert facts["cudnn"] == major * 10000 + minor * 100 + patch, facts  # torch runs the wheel's cuDNN
    for name in ("libcudnn", "libcublas", "libcudart"):
        assert name in facts["mapped"], facts["mapped"]
    doubled = {name: paths for name, paths in facts["mapped"].items() if len(paths) != 1}
    assert not doubled, f"two copies of a CUDA library in one process: {doubled}"
    assert all(path.startswith(f"{SITE}/nvidia/") for paths in facts["mapped"].values() for path in paths), facts


def test_cuda_check_covers_torch(engine):
    result = _sh(engine, "exec python /opt/app/scripts/check_cuda_libs.py")
    assert result.returncode == 0, result.stdout
    assert "torch/lib/libtorch_cuda.so" in result.stdout and "libcudnn.so.9" in result.stdout, result.stdout


def test_cuda_check_fails_when_a_torch_only_library_is_gone(engine):
    """cuSPARSE is torch's, not ONNX Runtime's: deleting it (in a throw-away container) must
    fail the check, naming it and the torch library that needs it."""
    result = subprocess.run([*engine, "run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE, "-c",
                             f"rm {SITE}/nvidia/cusparse/lib/libcusparse.so.12 && "
                             "exec python /opt/app/scripts/check_cuda_libs.py"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert result.returncode == 1, result.stdout
    failures = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert any("libtorch_cuda.so: needs libcusparse.so.12" in line for line in failures), result.stdout


def test_installed_requirements_are_consistent(engine):
    result = _sh(engine, "exec pip check")
    assert result.returncode == 0, result.stdout
    assert "No broken requirements found" in result.stdout, result.stdout
