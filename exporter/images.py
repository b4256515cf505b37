"""Input batches for parity checks and int8 calibration.

Real images are read and preprocessed with ``contract.imaging`` (the runtime's
own code, so that calibration sees exactly what inference sees). Synthetic
"image-like" inputs imitate ultrasound frames: a smooth bright fan with
multiplicative speckle and a few dark blobs, then the same normalization.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from exporter.errors import CalibrationError, CalibrationUsageError
from contract.imaging import ImageReadError, preprocess, read_image
from contract.manifest import Preprocessing

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _read_image(path: Path) -> np.ndarray:
    """The runtime's reader, so that calibration sees exactly what inference sees."""
    try:
        return read_image(path)
    except ImageReadError as exc:
        raise CalibrationError(str(exc)) from None


def random_batch(batch: int, prep: Preprocessing, seed: int = 0) -> np.ndarray:
    """Standard-normal noise in the network's input shape."""
    height, width = prep.input_size
    return np.random.default_rng(seed).standard_normal((batch, 3, height, width)).astype(np.float32)


def synthetic_images(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Ultrasound-like uint8 RGB frames: a smooth sector, speckle, dark structures."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for _ in range(count):
        cx, cy = width * rng.uniform(0.4, 0.6), -height * rng.uniform(0.05, 0.2)
        radius = np.hypot(xx - cx, yy - cy)
        angle = np.arctan2(xx - cx, yy - cy)
        fan = (np.abs(angle) < rng.uniform(0.5, 0.8)) & (radius < height * 1.05)
        base = np.where(fan, 110.0 * np.exp(-radius / (1.5 * height)) + 40.0, 0.0)
        for _ in range(rng.integers(1, 4)):
            bx, by = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.8) * height
            r = rng.uniform(0.05, 0.2) * min(height, width)
            base = base * np.where(np.hypot(xx - bx, yy - by) < r, 0.25, 1.0)
        speckle = rng.gamma(shape=4.0, scale=0.25, size=(height, width))
        grey = cv2.GaussianBlur((base * speckle).astype(np.float32), (3, 3), 0)
        grey = np.clip(grey, 0, 255).astype(np.uint8)
        images.append(np.repeat(grey[:, :, None], 3, axis=2))
    return images


def image_like_batch(batch: int, prep: Preprocessing, seed: int = 0) -> np.ndarray:
    """Synthetic ultrasound-like frames at a non-square native size, preprocessed."""
    height, width = prep.input_size
    native = (int(height * 1.5) + 7, int(width * 1.8) + 3)  # forces a real resize
    return preprocess(synthetic_images(batch, native, seed), prep)


def calibration_files(folder: Path, limit: int) -> list[Path]:
    """Image files of a calibration folder (recursive, sorted, at most ``limit``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationUsageError(f"{folder}: calibration folder does not exist (pass --calibration-dir DIR of images)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CalibrationUsageError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate int8 on")
    if len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def calibration_batches(files: list[Path], prep: Preprocessing, batch: int = 8) -> list[np.ndarray]:
    """Read and preprocess the calibration images; unreadable ones are skipped with a warning."""
    images = []
    for path in files:
        try:
            images.append(_read_image(path))
        except (CalibrationError, ValueError, OSError) as exc:
            log.warning("skipping calibration image %s: %s", path, exc)
    if not images:
        raise CalibrationError("none of the calibration images could be read")
    return [preprocess(images[i : i + batch], prep) for i in range(0, len(images), batch)]
