"""export.py never overwrites a model by accident: --out is required, an existing model needs --force,
and a refused export leaves every byte of the folder as it was (exit 2, one line on stderr)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import torch

import byom_nets
from byom_check import seeded
from contract.manifest import load_manifest
from export import main as export_main

ROOT = Path(__file__).resolve().parents[1]
NETS = Path(byom_nets.__file__)


def _bytes(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under the folder: its sha256 and modification time (ns)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _export(args: list[str]) -> tuple[int, list[str]]:
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = export_main(args)
    return code, [line for line in stderr.getvalue().splitlines() if line.strip()]


def _checkpoint(path: Path, seed: int) -> Path:
    torch.save(seeded(byom_nets.make_dict_net(width=8, decoder_width=8), seed=seed).state_dict(), path)
    return path


def test_no_out_is_a_usage_error_and_the_shipped_model_is_untouched(tmp_path):
    """The issue's command exactly, run from the repository root where model_weights/ lives."""
    before = _bytes(ROOT / "model_weights")
    (tmp_path / "my_net.pt").write_bytes(b"not read: the arguments are refused first")
    result = subprocess.run([sys.executable, "export.py", str(tmp_path / "my_net.pt"), "--model", f"{NETS}:make_dict_net"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "the following arguments are required: --out" in result.stderr
    assert _bytes(ROOT / "model_weights") == before


def test_help_documents_force_and_exit_status():
    result = subprocess.run([sys.executable, "export.py", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--force" in text and "must be new or empty" in text
    assert "Exit codes: 0 exported; 1 the model cannot be exported" in text and "2 the command line is wrong" in text


def test_an_existing_model_is_replaced_only_with_force(tmp_path):
    out = tmp_path / "my_model"
    out.mkdir()  # an empty folder is fine
    first = ["--model", f"{NETS}:make_dict_net", "--input-size", "64", "--out", str(out)]
    code, lines = _export([str(_checkpoint(tmp_path / "a.pt", seed=1)), *first])
    assert code == 0, lines
    source = load_manifest(out).source["sha256"]
    before = _bytes(out)

    code, lines = _export([str(_checkpoint(tmp_path / "b.pt", seed=2)), *first])
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("export.py: error: --out ") and "already holds a model of 5 tasks" in lines[0]
    assert "--force" in lines[0]
    assert _bytes(out) == before  # not one byte, not one timestamp changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "my_model"]  # nothing staged beside it

    code, lines = _export([str(tmp_path / "b.pt"), *first, "--force"])
    assert code == 0, lines
    assert load_manifest(out).source["sha256"] != source  # the second checkpoint's model replaced the first


def test_a_folder_that_is_not_a_model_is_refused_even_with_force(tmp_path):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.txt").write_text("precious\n")
    (out / "figures").mkdir()
    (out / "figures" / "a.png").write_bytes(b"\x89PNG")
    before = _bytes(out)
    for extra in ([], ["--force"]):
        code, lines = _export([str(tmp_path / "never_read.pt"), "--model", f"{NETS}:make_dict_net",
                               "--out", str(out), *extra])
        assert code == 2 and len(lines) == 1, lines
        assert "not empty and not a model folder" in lines[0] and "never replaces it" in lines[0]
        assert _bytes(out) == before


def test_a_file_as_out_is_refused(tmp_path):
    blocker = tmp_path / "model.zip"
    blocker.write_bytes(b"keep me")
    code, lines = _export([str(tmp_path / "never_read.pt"), "--model", f"{NETS}:make_dict_net", "--out", str(blocker)])
    assert code == 2 and len(lines) == 1 and "exists and is not a folder" in lines[0]
    assert blocker.read_bytes() == b"keep me"
