"""The folder options that ``python -m evaluation`` and ``python -m review`` share, and their old names.

Both tools name the same things the same way:

- ``--input DIR``: the labelled input folder (``DIR/csv_files/*.csv``), the one the run read;
- ``--predictions DIR``: the run's output folder (what ``python -m inference --output`` wrote).

Old names (evaluation's ``--labels``, review's ``--output``) still work and print one warning line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

INPUT_HELP = "the labelled input folder the run read (INPUT/csv_files/*.csv)"
PREDICTIONS_HELP = "the run's output folder (what python -m inference --output wrote)"


def add_folder_options(parser: argparse.ArgumentParser, old_names: dict[str, str]) -> None:
    """``--input`` and ``--predictions``, plus each deprecated ``old name -> new dest`` folder alias."""
    parser.add_argument("--input", type=Path, default=None, metavar="DIR", help=INPUT_HELP)
    parser.add_argument("--predictions", type=Path, default=None, metavar="DIR", help=PREDICTIONS_HELP)
    for old, new in old_names.items():
        add_deprecated(parser, old, new)


def add_deprecated(parser: argparse.ArgumentParser, old: str, new: str, metavar: str = "DIR") -> None:
    parser.add_argument(old, dest=f"deprecated_{old.lstrip('-')}", type=Path, default=None, metavar=metavar,
                        help=f"deprecated name of --{new}")


def resolve_aliases(parser: argparse.ArgumentParser, args: argparse.Namespace, old_names: dict[str, str]) -> None:
    """Move deprecated aliases onto their new names, one warning line each; exit 2 when both are given."""
    for old, new in old_names.items():
        value = getattr(args, f"deprecated_{old.lstrip('-')}")
        if value is None:
            continue
        if getattr(args, new) is not None:
            parser.error(f"{old} is the old name of --{new}; give only --{new}")
        print(f"{parser.prog}: warning: {old} is deprecated, use --{new} (same meaning)", file=sys.stderr)
        setattr(args, new, value)


def resolve_folder_options(parser: argparse.ArgumentParser, args: argparse.Namespace, old_names: dict[str, str]) -> None:
    """Resolve the aliases; both folders are required (exit 2, argparse's usage error, otherwise)."""
    resolve_aliases(parser, args, old_names)
    missing = [f"--{name}" for name in ("input", "predictions") if getattr(args, name) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
