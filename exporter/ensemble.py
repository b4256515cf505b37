"""Ensembles and test-time augmentation at export: several members in one model folder, flip rules.

    python export.py fold0.pt fold1.pt fold2.pt --out my_model/ [--tta flip] [--flip-rule TASK=RULE]

Layout of an ensemble folder (written atomically: staged beside the target, swapped in
whole)::

    manifest.json          members: [{path: members/0, ...}, ...], tta: {mode, flip_rules}
    members/0/             a complete model folder (its own manifest.json and graphs)
    members/1/ ...

Each member is exported exactly as a single checkpoint is (``export_checkpoint``: onnx
checker, ONNX Runtime vs PyTorch parity at batch 1 and 8, the PyTorch fallback's
weights), into ``members/<k>/``; a member may also be a network (``export_model``) or an
already exported model folder (copied after its files' sha256 are checked against its
manifest: its parity was proven at its own export). Members may differ in architecture
and in the tasks they serve (a *composite* folder: a specialist beside a generalist); a task
two members share must have the same kind and size in both, and every member must
preprocess images identically: otherwise ``EnsembleError`` names the member and the
difference, and nothing is written.

The top-level manifest repeats member 0's description with its graph paths under
``members/0/`` (so the tasks and preprocessing are read from one place, and a runtime that
predates ensembles still runs member 0), adds the tasks member 0 lacks from the first member
serving each (their graphs named ``m<k>/<graph>``, under ``members/<k>/``), keeps the graph
sets every member has, the worst parity and deviation of any member per task, and lists the
members (with the tasks each serves, when that is not every task). The averaging rules are
in ``inference.engines.combine``; the flip rules in ``contract.flip``; which members serve
a task and their weights in ``contract.ensemble``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from contract.ensemble import MEMBERS_FOLDER, EnsembleMember, TestTimeAugmentation
from contract.flip import FlipRule, FlipRuleError, resolve_rules
from contract.manifest import (
    GraphFile,
    GraphSet,
    Manifest,
    ManifestError,
    Parity,
    TaskEntry,
    load_manifest,
    write_manifest,
)
from exporter.errors import ExportError, UsageError
from exporter.folder import staged_folder

log = logging.getLogger(__name__)

MemberSource = Path | nn.Module


class EnsembleError(ExportError):
    """Members that cannot form one ensemble (different tasks or preprocessing), or a bad flip rule."""


class FlipRuleUsageError(EnsembleError, UsageError):
    """``--flip-rule`` names a task the model does not serve, or a rule that does not fit the task."""


def _name(source: MemberSource) -> str:
    return Path(source).name if isinstance(source, (str, Path)) else type(source).__name__


def _export_member(source: MemberSource, member_dir: Path, options: dict[str, Any]) -> Manifest:
    """One member into ``member_dir``: a checkpoint or network exported, or a model folder copied."""
    if isinstance(source, nn.Module):
        from exporter.api import export_model
        from exporter.images import calibration_files

        calibration_dir = options.get("calibration_dir")
        calibration = (calibration_files(Path(calibration_dir), options.get("calibration_limit", 64))
                       if calibration_dir else None)
        keep = {k: options[k] for k in ("precisions", "tolerance") if k in options}
        return export_model(source, member_dir, calibration_images=calibration,
                            source={"network": type(source).__name__}, **keep)
    source = Path(source)
    if source.is_dir():
        try:
            load_manifest(source, verify_hashes=True)
        except ManifestError as exc:
            raise EnsembleError(f"member {source}: {exc}") from None
        shutil.copytree(source, member_dir)
        return load_manifest(member_dir)
    from exporter.api import export_checkpoint

    return export_checkpoint(source, member_dir, **options)


def check_compatible(earlier: Sequence[Manifest], other: Manifest, index: int, name: str) -> None:
    """Tasks shared with an earlier member of the same kind and size, the preprocessing of member 0; else EnsembleError."""
    first = earlier[0]
    mine = {t.task_id: (k, t) for k, m in reversed(list(enumerate(earlier))) for t in m.model.tasks}
    theirs = {t.task_id: t for t in other.model.tasks}
    changed = sorted(t for t in set(mine) & set(theirs) if mine[t][1] != theirs[t])
    if changed:
        detail = ", ".join(f"{t} ({theirs[t].kind.value} {theirs[t].num_classes}, member {mine[t][0]}: "
                           f"{mine[t][1].kind.value} {mine[t][1].num_classes})" for t in changed)
        raise EnsembleError(f"member {index} ({name}) serves tasks of an earlier member with another kind or size: "
                            f"{detail}; a task shared by members must mean the same in each")
    if first.model.preprocessing != other.model.preprocessing:
        a, b = first.model.preprocessing.model_dump(), other.model.preprocessing.model_dump()
        diffs = ", ".join(f"{key} {b[key]} instead of {a[key]}" for key in a if a[key] != b[key])
        raise EnsembleError(f"member {index} ({name}) preprocesses images differently from member 0 ({diffs}); "
                            "the members of an ensemble must share the preprocessing (input size, normalization)")


def _prefixed(graph_set: GraphSet, prefix: str, deviation: dict[str, float], extra: dict[str, GraphFile]) -> GraphSet:
    graphs = {name: GraphFile(**{**g.model_dump(), "path": f"{prefix}/{g.path}"})
              for name, g in graph_set.graphs.items()}
    return graph_set.model_copy(update={"graphs": {**graphs, **extra}, "deviation_from_fp32": deviation})


def _borrowed(members: Sequence[Manifest], common: list[str]) -> tuple[list[TaskEntry], dict[str, dict[str, GraphFile]]]:
    """Tasks member 0 lacks, from the first member serving each (graphs renamed ``m<k>/<name>``), and those graphs."""
    known = {t.task_id for t in members[0].tasks}
    entries: list[TaskEntry] = []
    graphs: dict[str, dict[str, GraphFile]] = {name: {} for name in common}
    for k, member in enumerate(members[1:], start=1):
        for entry in member.tasks:
            if entry.task_id in known:
                continue
            known.add(entry.task_id)
            entries.append(entry.model_copy(update={"path": [f"m{k}/{g}" for g in entry.path]}))
            for name in common:
                for g in entry.path:
                    graph = member.graph_sets[name].graphs[g]
                    graphs[name][f"m{k}/{g}"] = GraphFile(**{**graph.model_dump(),
                                                             "path": f"{MEMBERS_FOLDER}/{k}/{graph.path}"})
    return entries, graphs


def ensemble_manifest(members: Sequence[Manifest], sources: Sequence[dict[str, str]],
                      tta: TestTimeAugmentation) -> Manifest:
    """The top-level manifest of members exported under ``members/<k>/`` (see the module docstring)."""
    first = members[0]
    prefix = f"{MEMBERS_FOLDER}/0"
    common = [name for name in first.graph_sets if all(name in m.graph_sets for m in members)]
    dropped = sorted({name for m in members for name in m.graph_sets} - set(common))
    if dropped:
        log.warning("graph sets not in every member are left out of the ensemble: %s", ", ".join(dropped))
    borrowed, borrowed_graphs = _borrowed(members, common)
    graph_sets = {}
    for name in common:
        worst: dict[str, float] = {}
        for member in members:
            for key, value in member.graph_sets[name].deviation_from_fp32.items():
                worst[key] = max(worst.get(key, value), value)
        graph_sets[name] = _prefixed(first.graph_sets[name], prefix, worst, borrowed_graphs[name])
    parity = None
    if all(m.parity is not None for m in members):
        errors: dict[str, float] = {}
        for member in members:
            for task_id, value in member.parity.max_rel_error.items():
                errors[task_id] = max(errors.get(task_id, value), value)
        parity = Parity(**{**first.parity.model_dump(), "max_rel_error": errors})
    fallback = first.torch_fallback
    if fallback.extra_file:
        fallback = fallback.model_copy(update={"extra_file": f"{prefix}/{fallback.extra_file}"})
    tasks = [*first.tasks, *borrowed]
    everything = [t.task_id for t in tasks]
    listed = [EnsembleMember(path=f"{MEMBERS_FOLDER}/{k}", architecture=m.model.architecture,
                             encoder_name=m.model.encoder_name, source=dict(src),
                             tasks=None if {t.task_id for t in m.tasks} == set(everything) else [t.task_id for t in m.tasks])
              for k, (m, src) in enumerate(zip(members, sources))]
    model = first.model.model_copy(update={"tasks": [*first.model.tasks, *(t.spec for t in borrowed)]})
    return first.model_copy(update={
        "model": model, "tasks": tasks, "graph_sets": graph_sets, "parity": parity, "torch_fallback": fallback,
        "members": listed, "tta": tta, "source": {"ensemble": f"{len(members)} members"},
    })


def tta_record(manifest: Manifest, mode: str, flip_rules: Mapping[str, FlipRule] | None) -> TestTimeAugmentation:
    """Every task's flip rule (overrides over the defaults) and the default mode; warns when flip flips nothing."""
    try:
        rules = resolve_rules(manifest.model.tasks, flip_rules)
    except FlipRuleError as exc:
        raise FlipRuleUsageError(str(exc)) from None
    if mode == "flip" and not any(rule.flips for rule in rules.values()):
        log.warning("--tta flip: every task of this model is unsafe to flip; the runtime will not flip")
    return TestTimeAugmentation(mode=mode, flip_rules=rules)


def export_ensemble(members: Sequence[MemberSource], out_dir: Path, tta: str = "none",
                    flip_rules: Mapping[str, FlipRule] | None = None, **options: Any) -> Manifest:
    """Export ``members`` (checkpoints, networks or model folders) as one ensemble folder at ``out_dir``.

    ``options`` go to each member's ``export_checkpoint`` (encoder, tasks, input_size,
    precisions, calibration_dir, calibration_limit, tolerance, ...). An ensemble of one is
    allowed (a folder with one member).
    """
    if not members:
        raise EnsembleError("an ensemble needs at least one member")
    exported: list[Manifest] = []
    sources: list[dict[str, str]] = []
    with staged_folder(Path(out_dir)) as stage:
        for index, source in enumerate(members):
            member_dir = stage / MEMBERS_FOLDER / str(index)
            member_dir.parent.mkdir(parents=True, exist_ok=True)
            log.info("member %d of %d: %s", index + 1, len(members), _name(source))
            manifest = _export_member(source, member_dir, options)
            if exported:
                check_compatible(exported, manifest, index, _name(source))
            else:  # a --flip-rule that does not fit a task of member 0 fails before member 1
                try:
                    resolve_rules(manifest.model.tasks, {t: r for t, r in (flip_rules or {}).items()
                                                         if t in {s.task_id for s in manifest.model.tasks}})
                except FlipRuleError as exc:
                    raise EnsembleError(str(exc)) from None
            exported.append(manifest)
            sources.append({"name": _name(source), **manifest.source})
        top = ensemble_manifest(exported, sources, TestTimeAugmentation())
        top = top.model_copy(update={"tta": tta_record(top, tta, flip_rules)})
        os.chmod(write_manifest(top, stage), 0o644)
        os.chmod(stage / MEMBERS_FOLDER, 0o755)
        load_manifest(stage, verify_hashes=True)  # the folder as the runtime will read it
    return top


def export_with_tta(checkpoint: Path, out_dir: Path, tta: str = "none",
                    flip_rules: Mapping[str, FlipRule] | None = None, **options: Any) -> Manifest:
    """One checkpoint exported as today (or a model folder copied), with the ``tta`` field in its manifest.

    Atomic like every export.
    """
    with staged_folder(Path(out_dir)) as stage:
        inner = stage / "model"
        manifest = _export_member(Path(checkpoint), inner, options)
        manifest = manifest.model_copy(update={"tta": tta_record(manifest, tta, flip_rules)})
        for entry in inner.iterdir():
            os.replace(entry, stage / entry.name)
        inner.rmdir()
        os.chmod(write_manifest(manifest, stage), 0o644)
    return manifest
