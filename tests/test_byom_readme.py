"""The "Bring your own model" example of docs/bring-your-own-model.md (and of the README while it has one) runs
as written (at a 64 x 64 input to stay fast)."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import torch

from byom_check import REPO, sample_input
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK


@pytest.mark.parametrize("page, heading", [("docs/bring-your-own-model.md", "## Example"),
                                           ("README.md", "## Bring your own model")])
def test_readme_example_exports_and_runs(tmp_path, page, heading):
    text = (REPO / page).read_text()
    if heading not in text:
        pytest.skip(f"{page} has no {heading!r} section")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert "--model my_net.py:build" in commands and "--model-arg width=32" in commands
    (tmp_path / "my_net.py").write_text(code)
    spec = importlib.util.spec_from_file_location("readme_my_net", tmp_path / "my_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.save(module.build(width=32).state_dict(), tmp_path / "my_net.pt")
    out = tmp_path / "my_model"
    assert export_main([str(tmp_path / "my_net.pt"), "--model", f"{tmp_path / 'my_net.py'}:build", "--model-arg", "width=32",
                        "--input-size", "64", "--out", str(out)]) == 0
    sample = sample_input(tmp_path, ("fetal_head", "breast_2cls", "thyroid_nodule_det", "FUGC"))
    assert inference_main(["--input", str(sample), "--output", str(tmp_path / "out"), "--weights", str(out)]) == EXIT_OK
    boxes = json.loads((tmp_path / "out" / "detection_predictions.json").read_text())
    assert [b["task_id"] for b in boxes] == ["thyroid_nodule_det"] * 2
