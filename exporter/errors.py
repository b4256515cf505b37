"""Errors the exporter raises; each message is one line that tells the user what to fix.

Exit codes of ``export.py``: 0 exported; 1 the model cannot be exported as it is (the
checkpoint, the network, its outputs, parity...: ``ExportError``, the message names the
fix); 2 the command line is wrong (an option, a combination of options, a path that does
not exist, an unknown task id: ``UsageError``, and argparse's own errors).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_MODEL = 1
EXIT_USAGE = 2


class ExportError(Exception):
    """Base class: the CLI prints ``str(exc)`` as one line and exits with ``exit_code``."""

    exit_code = EXIT_MODEL


class UsageError(ExportError):
    """The command line is wrong: an option, a combination of options, a missing path, an unknown task id."""

    exit_code = EXIT_USAGE


class CheckpointError(ExportError):
    """The checkpoint file is unreadable, or not a state_dict of a known network."""


class CheckpointUsageError(CheckpointError, UsageError):
    """The checkpoint named does not exist, or ``--tasks``/``--encoder`` do not fit the checkpoint."""


class EncoderInferenceError(ExportError):
    """The encoder could not be named from the checkpoint's tensor shapes."""


class EncoderNameError(EncoderInferenceError, UsageError):
    """``--encoder`` names an encoder that neither smp nor timm knows."""


class KeyMismatchError(CheckpointError):
    """The checkpoint's keys do not match the network (missing / unexpected / wrong shape)."""


class ParityError(ExportError):
    """ONNX Runtime disagrees with the reference (PyTorch, or the brought ONNX file) beyond the tolerance."""


class OutputFolderError(ExportError):
    """The output folder cannot be written."""


class OutputFolderRefused(OutputFolderError, UsageError):
    """``--out`` names a file, or a non-empty folder that is not a model folder."""


class CalibrationError(ExportError):
    """int8 export without usable calibration images."""


class CalibrationUsageError(CalibrationError, UsageError):
    """int8 asked for without ``--calibration-dir``, or a calibration folder that does not exist or holds no images."""


class BroughtModelError(ExportError):
    """A team's model cannot be exported as given; the message names the problem and the fix."""


class BroughtUsageError(BroughtModelError, UsageError):
    """``--model``/``--model-arg``/``--tasks``/``--task-map`` as given cannot name a usable model."""
