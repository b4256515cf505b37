"""`make test` tells a full pass from a partial one by its exit status and its last line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(target: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_probe():\n    assert True\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "REQUIRE_CONTAINER")}
    environment.update(CONTAINER_ENGINE="no-such-engine", **env)
    # -o: take the venv as it is (never reinstall it here); PYTEST_ARGS: run only the probe
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{VENV}/.dev-stamp", target, f"VENV={VENV}",
                           f"PYTEST_ARGS=-q -p no:cacheprovider {probe}"],
                          capture_output=True, text=True, env=environment, timeout=300, check=False)


def test_skipped_container_test_is_a_partial_pass_and_fails(tmp_path):
    result = _make("test", tmp_path)
    assert result.returncode != 0
    assert result.stdout.strip().splitlines()[-1].startswith("PARTIAL: python tests passed, container test SKIPPED")
    assert "no-such-engine: not installed" in result.stderr


def test_python_only_run_is_explicit_and_passes(tmp_path):
    result = _make("test-python", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("PASSED (python only")


def test_ci_without_an_engine_is_a_failure(tmp_path):
    result = _make("test", tmp_path, CI="true")
    assert result.returncode != 0
    assert result.stdout.strip().splitlines()[-1] == "FAILED: the container test (exit 1)"
    assert "a container engine is required here" in result.stderr


@pytest.mark.parametrize("variables, tag, with_torch", [((), "fmc-uia:latest", "0"),
                                                         (("WITH_TORCH=1",), "fmc-uia:torch", "1")])
def test_make_image_builds_the_chosen_variant(tmp_path, variables, tag, with_torch):
    """`make image` builds the default image; `make image WITH_TORCH=1` the fallback one under
    its own tag (an engine that records its command line stands in for docker)."""
    log = tmp_path / "engine.log"
    engine = tmp_path / "recording-engine"
    engine.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    engine.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if k not in ("FMC_IMAGE", "WITH_TORCH", "BUILD_ARGS")}
    environment["CONTAINER_ENGINE"] = str(engine)
    result = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "image", *variables],
                            capture_output=True, text=True, env=environment, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    builds = [line.split() for line in log.read_text().splitlines() if line.startswith("build ")]
    assert len(builds) == 1, log.read_text()
    build = builds[0]
    assert build[build.index("-t") + 1] == tag
    build_args = [build[i + 1] for i, word in enumerate(build) if word == "--build-arg"]
    assert f"WITH_TORCH={with_torch}" in build_args, build
    assert build[-1] == "."
