"""contract.imaging: every image kind becomes H x W x 3 uint8 RGB; preprocessing is the baseline's."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from contract.imaging import ImageReadError, image_size, preprocess, read_image
from contract.manifest import Preprocessing

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8)  # non-square: H 30, W 50
RGB = BGR[:, :, ::-1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _palette_png(path: Path, indices: np.ndarray, palette: list[tuple[int, int, int]]) -> None:
    height, width = indices.shape
    raw = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in indices)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
    data += _chunk(b"PLTE", bytes(v for colour in palette for v in colour))
    data += _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    path.write_bytes(data)


def _jpeg_with_orientation(path: Path, bgr: np.ndarray, orientation: int) -> None:
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    path.write_bytes(jpeg[:2].tobytes() + app1 + jpeg[2:].tobytes())


def test_colour_png_is_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "c.png"), BGR)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), RGB)


def test_grey_becomes_three_equal_channels(tmp_path):
    cv2.imwrite(str(tmp_path / "g.bmp"), BGR[:, :, 0])
    image = read_image(tmp_path / "g.bmp")
    assert image.shape == (30, 50, 3) and image.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(image[:, :, c], BGR[:, :, 0])


def test_alpha_is_dropped_not_composited(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.dstack([BGR, np.zeros((30, 50), np.uint8)]))
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), RGB)


def test_palette_png_is_expanded(tmp_path):
    indices = np.tile(np.arange(3), (4, 3))[:, :7]
    _palette_png(tmp_path / "p.png", indices, [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    image = read_image(tmp_path / "p.png")
    assert image.shape == (4, 7, 3)
    assert image[0, 0].tolist() == [255, 0, 0] and image[0, 1].tolist() == [0, 255, 0] and image[0, 2].tolist() == [0, 0, 255]


def test_16bit_full_range_keeps_high_byte_and_8bit_values_kept(tmp_path):
    cv2.imwrite(str(tmp_path / "wide.png"), BGR.astype(np.uint16) * 257)  # 0..65535
    np.testing.assert_array_equal(read_image(tmp_path / "wide.png"), RGB)
    cv2.imwrite(str(tmp_path / "narrow.png"), BGR.astype(np.uint16))  # 8-bit values in a 16-bit file
    np.testing.assert_array_equal(read_image(tmp_path / "narrow.png"), RGB)
    grey16 = np.array([[0, 256, 65535, 4096]], np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    assert read_image(tmp_path / "g16.png")[0, :, 0].tolist() == [0, 1, 255, 16]


def test_jpeg_exif_orientation_is_applied_like_the_baseline(tmp_path):
    _jpeg_with_orientation(tmp_path / "r.jpg", BGR, 6)  # 6: rotate 90 degrees clockwise to display
    image = read_image(tmp_path / "r.jpg")
    assert image.shape == (50, 30, 3)  # width and height swapped
    baseline = cv2.cvtColor(cv2.imread(str(tmp_path / "r.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image, baseline)


def test_mha_vector_and_single_slice_3d(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(RGB), isVector=True), str(tmp_path / "c.mha"))
    np.testing.assert_array_equal(read_image(tmp_path / "c.mha"), RGB)
    rgba = np.dstack([RGB, np.full((30, 50), 9, np.uint8)])
    sitk.WriteImage(sitk.GetImageFromArray(rgba, isVector=True), str(tmp_path / "c.tif"))
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif"), RGB)
    sitk.WriteImage(sitk.GetImageFromArray(BGR[None, :, :, 0]), str(tmp_path / "s.mha"))
    assert read_image(tmp_path / "s.mha").shape == (30, 50, 3)
    assert image_size(tmp_path / "s.mha") == (30, 50)


def test_float_image_is_min_max_scaled(tmp_path):
    values = np.array([[-1.0, 0.0, 1.0]], np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "f.mha"))
    assert read_image(tmp_path / "f.mha")[0, :, 0].tolist() == [0, 128, 255]


def test_volume_and_garbage_are_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.uint8)), str(tmp_path / "v.mha"))
    with pytest.raises(ImageReadError, match="slices"):
        read_image(tmp_path / "v.mha")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_preprocess_is_bit_identical_to_the_baseline_recipe(tmp_path):
    cv2.imwrite(str(tmp_path / "c.png"), BGR)
    prep = Preprocessing(input_size=(24, 40))
    batch = preprocess([read_image(tmp_path / "c.png")], prep)
    assert batch.shape == (1, 3, 24, 40) and batch.dtype == np.float32
    # the baseline, written out: cv2.imread, BGR->RGB, resize (W, H) bilinear, /255, ImageNet normalization
    image = cv2.cvtColor(cv2.imread(str(tmp_path / "c.png")), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (40, 24), interpolation=cv2.INTER_LINEAR).astype(np.float32) / np.float32(255.0)
    image = (image - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    np.testing.assert_array_equal(batch[0], image.transpose(2, 0, 1))
