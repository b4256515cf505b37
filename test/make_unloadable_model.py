#!/usr/bin/env python3
"""Copy a model folder so that ONNX Runtime cannot load one of its shared graphs.

    python test/make_unloadable_model.py SOURCE_DIR OUT_DIR [--graph encoder]

The copy's graph (the encoder by default: every task needs it) gets one extra node of an
operator no runtime implements (``org.fmc_uia.test:NoSuchOperator``), so creating its ONNX
Runtime session fails ("... is not a registered function/op"), as it would for a graph
exported with an operator the installed ONNX Runtime lacks. Its weights stay as they were,
and the manifest's sha256 and size of that graph are rewritten to match the new file: the
file is not "changed or damaged" in the runtime's sense, so under ``--engine auto`` the run
switches to the PyTorch fallback (see inference/engines/fallback.py) instead of failing the tasks.
The container test (test/run_test.sh --onnx-unloadable) runs the image's cases on it.

Exit 0 on success, 1 when the folder is not a model folder or the graph is not shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import onnx
from onnx import helper

log = logging.getLogger("make_unloadable_model")

DOMAIN = "org.fmc_uia.test"
OPERATOR = "NoSuchOperator"


class ModelFolderError(Exception):
    """The source is not a model folder this script can change; the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _graph_entry(manifest: dict, graph: str) -> dict:
    """The fp32 entry of ``graph`` in the manifest, which must serve several tasks."""
    try:
        entry = manifest["graph_sets"]["fp32"]["graphs"][graph]
    except KeyError as exc:
        raise ModelFolderError(f"the manifest has no fp32 graph {graph!r} (missing key {exc})") from exc
    users = [task["task_id"] for task in manifest.get("tasks", []) if graph in task.get("path", [])]
    if len(users) < 2:
        raise ModelFolderError(f"graph {graph!r} serves {len(users)} task(s): only a shared graph's "
                               "session fault switches a run to PyTorch")
    return entry


def make_unloadable(source: Path, out: Path, graph: str = "encoder") -> Path:
    """Copy ``source`` to ``out`` with ``graph`` made unloadable; the path of the changed file."""
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file():
        raise ModelFolderError(f"{manifest_path}: no manifest, not a model folder")
    if out.exists():
        raise ModelFolderError(f"{out} exists; give a new folder")
    manifest = json.loads(manifest_path.read_text())
    entry = _graph_entry(manifest, graph)
    shutil.copytree(source, out)
    path = out / entry["path"]
    model = onnx.load(str(path), load_external_data=False)
    model.graph.node.append(helper.make_node(OPERATOR, [model.graph.input[0].name],
                                             [f"{graph}.unloadable"], domain=DOMAIN))
    model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    onnx.save(model, str(path))
    entry["sha256"], entry["bytes"] = _sha256(path), path.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="model folder (with manifest.json)")
    parser.add_argument("out", type=Path, help="new folder for the copy")
    parser.add_argument("--graph", default="encoder", help="the shared graph to make unloadable (default: encoder)")
    args = parser.parse_args(argv)
    try:
        changed = make_unloadable(args.source, args.out, args.graph)
    except (ModelFolderError, OSError, json.JSONDecodeError) as exc:
        log.error("ERROR: %s", exc)
        return 1
    log.info("%s: ONNX Runtime cannot load it (%s:%s); manifest hash updated", changed, DOMAIN, OPERATOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
