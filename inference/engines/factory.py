"""``make_engine``: the engine a run uses, for every layout, the Python API and ``Predictor.open``.

    engine = make_engine(folder, engine="auto", device="auto", precision="auto", threads=None, tta="auto")

One model without TTA: the ordinary ``FallbackEngine`` (ONNX Runtime, PyTorch if it fails).
Members in the manifest, or flip TTA on some task: an ``EnsembleEngine`` over them.
"""

from __future__ import annotations

import logging

from contract.manifest import ManifestError, ModelFolder
from inference.engines.ensemble import EnsembleEngine, open_members, resolve_tta
from inference.engines.fallback import FallbackEngine, RunEngine
from inference.errors import FatalError

log = logging.getLogger(__name__)


def make_engine(folder: ModelFolder, engine: str = "auto", device: str = "auto", precision: str = "auto",
                threads: int | None = None, tta: str = "auto", verify_hashes: bool = True,
                expected_images: int | None = None) -> RunEngine:
    """The engine a run uses: ``FallbackEngine`` for one model without TTA, else ``EnsembleEngine``.

    ``expected_images``: how many images the run will predict (None: unknown, e.g. a long-lived API
    process); ``--precision auto`` on a CPU uses a CPU variant only when they pay for its start-up."""
    flip = resolve_tta(folder, tta)
    if not folder.manifest.members and not flip:
        return FallbackEngine(folder, engine, device, precision, threads, verify_hashes=verify_hashes,
                              expected_images=expected_images)
    try:
        members = open_members(folder)
    except ManifestError as exc:
        raise FatalError(str(exc)) from exc
    if folder.manifest.members:
        log.info("ensemble of %d members: %s", len(members), ", ".join(str(m.path) for m in members))
    if flip:
        log.info("flip TTA on %d of %d tasks: %s", len(flip), len(folder.manifest.tasks), ", ".join(sorted(flip)))
    return EnsembleEngine(folder, members, flip, engine, device, precision, threads, verify_hashes, expected_images)
