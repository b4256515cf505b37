"""Writing the chosen model folder: the members some task uses, and each task's choice in the manifest.

Members no task uses are left out. One member left: a single-model folder (a copy of it,
``exporter.ensemble.export_with_tta``); several: an ensemble folder
(``exporter.ensemble.export_ensemble``, a composite one when they serve different tasks). Then
the manifest gets, per task with a choice: ``composition`` (its members and weights, ensembles
only), ``tta.tasks`` (flip or none under ``--tta auto``) and ``TaskEntry.postprocess``; the
selection report is written beside it. The folder is staged and swapped in whole
(``exporter.folder.staged_folder``): a failure leaves ``out_dir`` as it was.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Collection, Mapping, Sequence

from contract.ensemble import MemberWeight
from contract.flip import FlipRule
from contract.manifest import Manifest, load_manifest, write_manifest
from selection.candidates import Candidate

log = logging.getLogger(__name__)


def used_members(choices: Mapping[str, Candidate]) -> list[int]:
    return sorted({member for candidate in choices.values() for member, _ in candidate.members})


def apply_choices(manifest: Manifest, choices: Mapping[str, Candidate], remap: Mapping[int, int],
                  tta_mode: str, untested: Collection[str] = ()) -> Manifest:
    """``manifest`` with every task's choice (members renumbered by ``remap``) written in (module docstring).

    ``untested`` tasks (no validation rows) keep the default: no composition or per-task TTA entry."""
    choices = {t: c for t, c in choices.items() if t not in untested}
    tasks = [entry.model_copy(update={"postprocess": choices[entry.task_id].postprocess
                                      if entry.task_id in choices and choices[entry.task_id].postprocess.active
                                      else None}) for entry in manifest.tasks]
    tta = manifest.tta.model_copy(update={
        "mode": tta_mode, "tasks": {t: ("flip" if c.flip else "none") for t, c in choices.items()}})
    update: dict = {"tasks": tasks, "tta": tta, "source": {**manifest.source, "selection": "selection_report.json"}}
    if manifest.members:
        update["composition"] = {t: [MemberWeight(member=remap[m], weight=w) for m, w in c.members]
                                 for t, c in choices.items()}
    return Manifest.model_validate(manifest.model_copy(update=update).model_dump())


def write_folder(out_dir: Path, member_dirs: Sequence[Path], choices: Mapping[str, Candidate], untested: Collection[str],
                 tta_mode: str, flip_rules: Mapping[str, FlipRule], write_report) -> Manifest:
    """The chosen folder at ``out_dir``; ``write_report(folder)`` writes the report into the staged folder."""
    from exporter.ensemble import export_ensemble, export_with_tta
    from exporter.folder import staged_folder

    used = used_members(choices)
    remap = {old: new for new, old in enumerate(used)}
    with staged_folder(Path(out_dir)) as stage:
        inner = stage / "model"
        if len(used) == 1:
            export_with_tta(member_dirs[used[0]], inner, tta=tta_mode, flip_rules=flip_rules)
        else:
            export_ensemble([member_dirs[k] for k in used], inner, tta=tta_mode, flip_rules=flip_rules)
        for entry in inner.iterdir():
            os.replace(entry, stage / entry.name)
        inner.rmdir()
        manifest = apply_choices(load_manifest(stage), choices, remap, tta_mode, untested)
        os.chmod(write_manifest(manifest, stage), 0o644)
        for path in write_report(stage):
            os.chmod(path, 0o644)
        load_manifest(stage, verify_hashes=True)  # the folder as the runtime will read it
    dropped = [str(member_dirs[k]) for k in range(len(member_dirs)) if k not in remap]
    if dropped:
        log.info("members no task uses were left out: %s", ", ".join(dropped))
    return manifest
