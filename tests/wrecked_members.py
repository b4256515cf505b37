"""Model folders made from one model with some heads wrecked (for the selection's tests and benchmark).

``wrecked_copy(source, target, tasks, seed)`` copies an exported folder and replaces every
weight of the named tasks' head graphs (fp32 and any other graph set) with seeded random
values of a few times the original spread, so the head answers confidently and wrongly; the
manifest's sha256 and sizes are updated, so the folder loads and its PyTorch fallback
rebuilds the same wrecked weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np


def _wreck_graph(path: Path, rng: np.random.Generator, scale: float) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for initializer in model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        if array.dtype.kind != "f" or array.size < 2:
            continue
        spread = float(np.std(array)) or 0.1
        noise = rng.normal(0.0, scale * spread, array.shape)
        if np.all(array > 0):  # variances, scales: kept positive (a negative variance would give NaN)
            noise = np.abs(noise) + float(array.min())
        initializer.CopyFrom(numpy_helper.from_array(noise.astype(array.dtype), initializer.name))
    onnx.save(model, str(path))


def wrecked_copy(source: Path, target: Path, tasks: Iterable[str], seed: int, scale: float = 4.0) -> Path:
    from contract.manifest import sha256_of

    shutil.copytree(source, target)
    data = json.loads((target / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    wanted = set(tasks)
    heads = {t["task_id"]: t["path"][-1] for t in data["tasks"] if t["task_id"] in wanted}
    if set(heads) != wanted:
        raise ValueError(f"{source} has no tasks {sorted(wanted - set(heads))}")
    wrecked: set[str] = set()
    for graph_set in data["graph_sets"].values():
        for name in heads.values():
            graph = graph_set["graphs"][name]
            file = target / graph["path"]
            if graph["path"] not in wrecked:  # graph sets may share a head's file
                _wreck_graph(file, rng, scale)
                wrecked.add(graph["path"])
            graph["sha256"], graph["bytes"] = sha256_of(file), file.stat().st_size
    data["source"] = {**data.get("source", {}), "wrecked": ",".join(sorted(wanted))}
    (target / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")
    return target
