"""A CPU variant's graphs compiled once at the check and kept in the model folder, so that runs import them.

OpenVINO compiles B4's encoder in about 0.6 s on the development CPU; importing what it compiled
(``CompiledModel.export_model`` / ``Core.import_model``) takes about 0.15 s. After a variant passed
its check (for at least one kind), ``write_compiled`` compiles each graph the variant runs (not the
heads: ONNX Runtime runs them) with the runtime's own settings and writes
``openvino/<variant>/<graph>.blob`` (atomically), recorded in the manifest with their sha256, the
OpenVINO version and the CPU's kernel flags (``contract.export_records.CompiledGraphs``). A run uses
them only with the same OpenVINO on a CPU with the same flags; anywhere else it compiles the ONNX
files as before (``inference.engines.openvino_runner``). Nothing changes in the graphs themselves.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time

from contract.atomic import atomic_write_bytes
from contract.export_records import CompiledBlob, CompiledGraphs
from contract.manifest import ModelFolder
from inference.engines.cpu_variants import VARIANTS, kernel_flags
from inference.engines.openvino_probe import compile_config
from inference.engines.openvino_runner import ORT_GRAPH_PREFIXES, openvino_core, openvino_version

log = logging.getLogger(__name__)

COMPILED_DIR = "openvino"


def write_compiled(folder: ModelFolder, name: str, threads: int) -> tuple[CompiledGraphs, float]:
    """Compile the graphs variant ``name`` runs on OpenVINO and write them into ``folder``; their record, and the
    seconds a run saves by importing them instead of compiling (each blob's import is timed here)."""
    variant = VARIANTS[name]
    graph_set = folder.manifest.graph_set(variant.graph_set)
    target = folder.path / COMPILED_DIR / name
    shutil.rmtree(target, ignore_errors=True)  # an earlier check's files (another OpenVINO, another CPU)
    target.mkdir(parents=True)
    core = openvino_core()
    blobs: dict[str, CompiledBlob] = {}
    saved = 0.0
    config = compile_config(variant.hint, threads)
    for graph_name, graph in graph_set.graphs.items():
        if graph_name.startswith(ORT_GRAPH_PREFIXES):
            continue
        started = time.perf_counter()
        compiled = core.compile_model(str(folder.path / graph.path), "CPU", config)
        compile_s = time.perf_counter() - started
        data = compiled.export_model().getvalue()
        relative = f"{COMPILED_DIR}/{name}/{graph_name}.blob"
        atomic_write_bytes(folder.path / relative, data)
        blobs[graph_name] = CompiledBlob(path=relative, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        started = time.perf_counter()
        core.import_model((folder.path / relative).read_bytes(), "CPU", config)
        import_s = time.perf_counter() - started
        saved += max(0.0, compile_s - import_s)
        log.info("compiled %s for %s: %s (%.1f MB; compiled in %.2f s, imported in %.2f s)", graph_name, name,
                 relative, len(data) / 1e6, compile_s, import_s)
    return CompiledGraphs(openvino=openvino_version(), cpu_flags=kernel_flags(), graphs=blobs), saved
