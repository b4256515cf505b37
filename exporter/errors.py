"""Errors the exporter raises; each message is one line that tells the user what to fix."""

from __future__ import annotations


class ExportError(Exception):
    """Base class: the CLI prints ``str(exc)`` as one line and exits non-zero."""


class CheckpointError(ExportError):
    """The checkpoint file is missing, unreadable, or not a state_dict of a known network."""


class EncoderInferenceError(ExportError):
    """The encoder could not be named from the checkpoint's tensor shapes."""


class KeyMismatchError(CheckpointError):
    """The checkpoint's keys do not match the network (missing / unexpected / wrong shape)."""


class ParityError(ExportError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance."""


class OutputFolderError(ExportError):
    """The output folder cannot be written."""


class CalibrationError(ExportError):
    """int8 export without usable calibration images."""
