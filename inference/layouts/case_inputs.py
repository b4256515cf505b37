"""A Grand-Challenge case's inputs: ``inputs.json``, its sockets, the task id and the image.

Interface (one case per job):

================== ============ ==================================================== =====================================
socket slug        kind         file                                                 content
================== ============ ==================================================== =====================================
ultrasound-image   image        ``/input/images/ultrasound-image/<name>.mha``         the 2D ultrasound image (exactly one
                                (also ``.tif``/``.tiff``; ``.png``/``.jpg``/``.jpeg``  file)
                                for local use)
task-id            string value ``/input/task-id.json`` (or ``"value"`` inline in    a JSON string naming one of the
                                ``inputs.json``)                                      model's tasks, e.g. ``"fetal_head"``
================== ============ ==================================================== =====================================

``inputs.json`` is a list of entries; each names its socket's slug under ``socket``
(newer platform) or ``interface`` (older), either as an object with ``slug`` or as the
slug string itself; ``relative_path`` may sit in the entry or in the socket object.
Other keys (``pk``, ``image``, ``file``, ...) are ignored. The sockets must be exactly
the two above; otherwise the error lists the sockets found and the ones expected.

Image conversion rule (so that the network sees what it sees in the batch layout):

- ``.mha``/``.mhd``/``.nrrd``/``.nii(.gz)``/``.tif``/``.tiff``: ``SimpleITK.ReadImage``.
  2D, or 3D with exactly one slice (taken as 2D); more slices, 4D and a zero-size
  dimension (an empty image) are errors. Vector pixels (RGB/RGBA) keep their first
  three components (alpha dropped); scalar pixels are grey, replicated to 3 channels.
  ``uint8`` is kept as is; every other integer or float type goes through the batch
  layout's own rule, the same function (``contract.imaging.to_rgb8``): 16-bit values
  <= 255 kept, otherwise the high byte; other types: values within 0..255 rounded,
  otherwise min-max scaled to 0..255 (a constant image becomes 0; NaN/inf -> 0).
- ``.png``/``.jpg``/``.jpeg``: read exactly as a batch-layout image (``imaging.read_image``),
  with unit spacing, zero origin and identity direction.
- An image whose header promises more than ``MAX_PIXELS`` pixels is refused before it is read.
- The H x W x 3 uint8 RGB array is then preprocessed exactly like batch images
  (``imaging.preprocess`` inside ``Predictor.predict``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from inference.errors import FatalError
from contract.imaging import ImageReadError, to_rgb8, read_image
from contract.tasks import UnknownTaskError

INPUTS_JSON = "inputs.json"
IMAGE_SLUG = "ultrasound-image"
TASK_SLUG = "task-id"
EXPECTED_SLUGS = (IMAGE_SLUG, TASK_SLUG)
SITK_IMAGE_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nii", ".nii.gz", ".tif", ".tiff")
LOCAL_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: The largest image a case may hold (its header is read first): 2^28 pixels, about 16,000 x 16,000, a
#: few GB of memory on the way through; an image claiming more is refused before its pixels are read.
MAX_PIXELS = 1 << 28
IMAGE_SUFFIXES = SITK_IMAGE_SUFFIXES + LOCAL_IMAGE_SUFFIXES


class CaseError(FatalError):
    """A case that cannot be run; the message names the socket and the file (exit code 1)."""


class _Socket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    slug: str
    relative_path: str | None = None


class InputEntry(BaseModel):
    """One entry of ``inputs.json`` (only the keys this runtime reads)."""

    model_config = ConfigDict(extra="ignore")
    socket: _Socket | str | None = None
    interface: _Socket | str | None = None
    relative_path: str | None = None
    value: Any = None

    @property
    def slug(self) -> str | None:
        ref = self.socket if self.socket is not None else self.interface
        return ref if isinstance(ref, str) or ref is None else ref.slug

    @property
    def path(self) -> str | None:
        ref = self.socket if self.socket is not None else self.interface
        if self.relative_path:
            return self.relative_path
        return ref.relative_path if isinstance(ref, _Socket) else None


@dataclass(frozen=True)
class CaseImage:
    """The case's image as the network reads it, and the SimpleITK image its mask copies geometry from."""

    path: Path
    rgb: np.ndarray  # H x W x 3 uint8
    reference: Any = None  # SimpleITK.Image (None for .png/.jpg: unit spacing, zero origin)


@dataclass(frozen=True)
class Case:
    input_dir: Path
    task_id: str
    task_source: str  # the file (or inputs.json's inline value) the task id came from
    image: CaseImage


def read_entries(input_dir: Path) -> dict[str, InputEntry]:
    """``inputs.json`` -> {slug: entry}; CaseError when it is missing, malformed or its sockets differ."""
    source = Path(input_dir) / INPUTS_JSON
    if not source.is_file():
        raise CaseError(f"{source} is missing: a Grand-Challenge case lists its sockets "
                        f"({', '.join(EXPECTED_SLUGS)}) in inputs.json")
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ValueError(f"expected a JSON list of socket entries, got {type(raw).__name__}")
        entries = [InputEntry.model_validate(item) for item in raw]
    except (OSError, UnicodeDecodeError, ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CaseError(f"{source} cannot be read: {reason}") from None
    found = [entry.slug or "(entry without a socket slug)" for entry in entries]
    by_slug = {entry.slug: entry for entry in entries if entry.slug}
    if sorted(found) != sorted(EXPECTED_SLUGS):
        missing = sorted(set(EXPECTED_SLUGS) - set(found))
        unexpected = sorted(set(found) - set(EXPECTED_SLUGS))
        repeated = sorted({slug for slug in found if found.count(slug) > 1})
        details = [f"missing: {', '.join(missing)}" if missing else "",
                   f"unexpected: {', '.join(unexpected)}" if unexpected else "",
                   f"repeated: {', '.join(repeated)}" if repeated else ""]
        raise CaseError(f"{source}: sockets found: {', '.join(found) or '(none)'}; expected exactly: "
                        f"{', '.join(EXPECTED_SLUGS)} ({'; '.join(d for d in details if d)})")
    return by_slug


def _inside(input_dir: Path, relative: str, slug: str) -> Path:
    root = Path(input_dir).resolve()
    target = (root / relative).resolve()
    if root != target and root not in target.parents:
        raise CaseError(f"socket {slug}: relative_path {relative!r} points outside {input_dir}")
    return target


def read_task_id(input_dir: Path, entry: InputEntry) -> tuple[str, str]:
    """(task id, where it came from): the entry's inline ``value`` if a string, else the JSON string in its file."""
    if isinstance(entry.value, str) and entry.value.strip():
        return entry.value.strip(), f"{Path(input_dir) / INPUTS_JSON} (inline value)"
    source = _inside(input_dir, entry.path or f"{TASK_SLUG}.json", TASK_SLUG)
    if not source.is_file():
        raise CaseError(f"socket {TASK_SLUG}: {source} is missing (expected a JSON string such as \"fetal_head\")")
    try:
        value = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CaseError(f"socket {TASK_SLUG}: {source} is not valid JSON ({exc})") from None
    if not isinstance(value, str) or not value.strip():
        raise CaseError(f"socket {TASK_SLUG}: {source} holds {json.dumps(value)[:80]}, "
                        "expected a JSON string naming a task, e.g. \"fetal_head\"")
    return value.strip(), str(source)


def find_image(input_dir: Path, entry: InputEntry) -> Path:
    """The one image file of the image socket (its folder ``images/<slug>/``, or the file named)."""
    relative = entry.path if entry.path and not entry.path.endswith(".json") else f"images/{IMAGE_SLUG}"
    where = _inside(input_dir, relative, IMAGE_SLUG)
    if where.is_file():
        return where
    if not where.is_dir():
        raise CaseError(f"socket {IMAGE_SLUG}: folder {where} is missing (expected one "
                        f"{'/'.join(IMAGE_SUFFIXES)} image in it)")
    files = sorted(p for p in where.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.name.lower().endswith(IMAGE_SUFFIXES)]
    if len(images) != 1:
        listed = ", ".join(p.name for p in files) or "nothing"
        raise CaseError(f"socket {IMAGE_SLUG}: expected exactly one {'/'.join(IMAGE_SUFFIXES)} image in {where}, "
                        f"found {listed}")
    return images[0]


def check_image_size(path: Path, limit: int = MAX_PIXELS) -> None:
    """CaseError when the header of ``path`` promises more than ``limit`` pixels (read before the pixels are)."""
    import SimpleITK as sitk  # lazy: heavy, and only image sockets need it

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # the reader proper names the problem
    size = reader.GetSize()
    pixels = 1
    for extent in size:
        pixels *= int(extent)
    if pixels > limit:
        raise CaseError(f"socket {IMAGE_SLUG}: {path}: {' x '.join(map(str, size))} pixels, more than the "
                        f"{limit:,} this runtime reads (an ultrasound image has a few million); not read")


def read_case_image(path: Path) -> CaseImage:
    """Read the image by the conversion rule of the module docstring; CaseError naming socket and file."""
    check_image_size(path)
    try:
        if path.name.lower().endswith(LOCAL_IMAGE_SUFFIXES):
            return CaseImage(path, read_image(path))
        return _read_sitk(path)
    except (ImageReadError, ValueError, TypeError) as exc:
        reason = str(exc).replace(f"{path}: ", "")
        raise CaseError(f"socket {IMAGE_SLUG}: {path}: {reason}") from None
    except MemoryError:
        raise CaseError(f"socket {IMAGE_SLUG}: {path}: out of memory reading the image") from None


def _read_sitk(path: Path) -> CaseImage:
    import SimpleITK as sitk  # lazy: heavy, and only image sockets need it

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise ImageReadError(f"SimpleITK cannot read it ({lines[-1].strip() if lines else 'unknown error'})") from None
    size = image.GetSize()
    if any(s == 0 for s in size):
        raise ImageReadError(f"empty image (size {'x'.join(map(str, size))})")
    if image.GetDimension() == 3 and size[2] != 1:
        raise ImageReadError(f"3D volume with {size[2]} slices; only 2D or single-slice images are supported")
    if image.GetDimension() not in (2, 3):
        raise ImageReadError(f"{image.GetDimension()}D image; only 2D or single-slice 3D images are supported")
    array = sitk.GetArrayFromImage(image)  # (1,) H x W (x C)
    if image.GetDimension() == 3:
        array = array[0]
    return CaseImage(path, to_rgb8(array), reference=image)


def read_case(input_dir: Path, check_task: Callable[[str], object] | None = None) -> Case:
    """Everything a case needs before the model runs; CaseError on any problem.

    ``check_task(task_id)`` (e.g. ``manifest.task``) runs before the image is read; its
    ``UnknownTaskError`` becomes a CaseError naming the socket and the file.
    """
    entries = read_entries(input_dir)
    task_id, task_source = read_task_id(input_dir, entries[TASK_SLUG])
    if check_task is not None:
        try:
            check_task(task_id)
        except UnknownTaskError as exc:
            raise CaseError(f"socket {TASK_SLUG}: {task_source}: {exc}") from None
    image = read_case_image(find_image(input_dir, entries[IMAGE_SLUG]))
    return Case(Path(input_dir), task_id, task_source, image)
