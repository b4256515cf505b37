"""The training package's errors."""


class TrainingDataError(ValueError):
    """A training/validation folder that is not usable (layout, columns, files, labels)."""
