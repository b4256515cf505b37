"""The README's workflow runs as written: export a brought model, run, evaluate, review, measure.

The commands are read from the README's "## The workflow" section (its ```bash blocks) and run
as subprocesses from a scratch folder that holds what the README assumes: `my_net.py` and
`my_net.pt` made as docs/bring-your-own-model.md's example says, and `test/input` (the sample
folder, narrowed to the four tasks the example network serves, so that every row has a
prediction). Only `python` and `export.py` are replaced (by this interpreter and the repository's
export.py); every argument is the README's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys


from byom_check import REPO, sample_input

EXAMPLE_TASKS = ("fetal_head", "breast_2cls", "thyroid_nodule_det", "FUGC")


def _section(page: str, heading: str) -> str:
    text = (REPO / page).read_text()
    assert heading in text, f"{page} has no {heading!r} section"
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def _bash_commands(section: str) -> list[str]:
    """Every `python ...` line of the section's ```bash blocks, without trailing comments."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("python "):
                lines.append(line)
    return lines


def workflow_commands() -> dict[str, list[str]]:
    """tool -> the README workflow's command for it, as argv (`python` and `export.py` still in it)."""
    found: dict[str, list[str]] = {}
    for line in _bash_commands(_section("README.md", "## The workflow")):
        argv = shlex.split(line)
        if argv[1] == "export.py" and "--model" in argv:
            found.setdefault("export", argv)
        elif argv[1] == "-m" and argv[2] in ("inference", "evaluation", "review", "biometry"):
            found.setdefault(argv[2], argv)
    return found


def test_the_workflow_names_every_step():
    commands = workflow_commands()
    assert set(commands) == {"export", "inference", "evaluation", "review", "biometry"}
    assert commands["export"][commands["export"].index("--out") + 1] == "my_model/"
    assert commands["inference"][commands["inference"].index("--weights") + 1] == "my_model/"
    for tool in ("evaluation", "review", "biometry"):  # each reads the folder the run wrote
        assert commands[tool][commands[tool].index("--predictions") + 1] == "out"


def test_the_workflow_runs_as_written(tmp_path):
    byom = _section("docs/bring-your-own-model.md", "## Example")
    (tmp_path / "my_net.py").write_text(re.search(r"```python\n(.*?)```", byom, re.S).group(1))
    sample_input(tmp_path / "test", EXAMPLE_TASKS)  # -> tmp_path/test/input
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        argv = [sys.executable if a == "python" else str(REPO / a) if a == "export.py" else a for a in argv]
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)

    [save_weights] = [c for c in _bash_commands(byom) if c.startswith("python -c")]
    assert run(shlex.split(save_weights)).returncode == 0

    commands = workflow_commands()
    exits = {}
    for tool in ("export", "inference", "evaluation", "review", "biometry"):
        result = run(commands[tool])
        exits[tool] = result.returncode
        assert result.returncode in ((0, 3) if tool == "biometry" else (0,)), \
            f"{' '.join(commands[tool])}: exit {result.returncode}\n{result.stderr[-2000:]}"

    manifest = json.loads((tmp_path / "my_model" / "manifest.json").read_text())
    assert sorted(t["task_id"] for t in manifest["tasks"]) == sorted(EXAMPLE_TASKS)
    boxes = json.loads((tmp_path / "out" / "detection_predictions.json").read_text())
    assert [b["task_id"] for b in boxes] == ["thyroid_nodule_det"] * 2
    assert len(list((tmp_path / "out").rglob("*.png"))) == 2  # the two fetal_head masks
    assert "fetal_head" in (tmp_path / commands["review"][commands["review"].index("--out") + 1]).read_text()
    # the example network is untrained: its head masks may hold no ellipse, which biometry reports (exit 3)
    measures_file = tmp_path / commands["biometry"][commands["biometry"].index("--out") + 1]
    measures = json.loads(measures_file.read_text())
    report = json.loads(measures_file.with_name(measures_file.stem + "_report.json").read_text())
    assert isinstance(measures, list) and report["rows"] == 2
    assert bool(report["problems"]) == (exits["biometry"] == 3)
