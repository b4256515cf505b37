#!/usr/bin/env python3
"""Zip a finished run's output folder for the Codabench format check, as the organisers do it.

    python scripts/zip_predictions.py OUTPUT_DIR ZIP_FILE

The archive holds what ``cd OUTPUT_DIR && zip -r predictions.zip .`` stores (every file and
folder, paths relative to OUTPUT_DIR, folders as ``NAME/`` entries, no ``./`` prefix), less the
run's own bookkeeping: its ``.fmc-*`` files (lock, journal, record spool; none survive a
finished run) and stale ``.NAME.XXXXXXXX.tmp`` write temporaries. Entries are in sorted order,
so the same folder gives the same list. ZIP_FILE is written beside itself and renamed when
complete; ZIP_FILE inside OUTPUT_DIR is left out of itself.

Exit status: 0 written; 1 the run did not finish (its journal is still there), the folder holds
no prediction file, or the archive cannot be written; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

BOOKKEEPING = ".fmc-"  # inference.bookkeeping.lock, inference.bookkeeping.journal, inference.bookkeeping.record_spool (see inference/bookkeeping/output_audit.py)
JOURNAL = re.compile(r"^\.fmc-journal(\..+)?\.jsonl$")
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # contract.atomic.TEMP_PATTERN
PREDICTION_FILES = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


class PackagingError(Exception):
    """The folder cannot be packaged; the message says why."""


def entries(output_dir: Path, zip_file: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(path, archive name) of everything to store, sorted; and the names left out."""
    keep: list[tuple[Path, str]] = []
    left_out: list[str] = []
    skip = zip_file.resolve()
    for folder, dirs, files in os.walk(output_dir):
        dirs.sort()
        base = Path(folder)
        relative = base.relative_to(output_dir).as_posix()
        prefix = "" if relative == "." else relative + "/"
        if prefix:
            keep.append((base, prefix))
        for name in sorted(files):
            path = base / name
            if (not prefix and name.startswith(BOOKKEEPING)) or TEMPORARY.match(name):
                left_out.append(prefix + name)
            elif path.resolve() != skip:
                keep.append((path, prefix + name))
    return keep, left_out


def check_finished(output_dir: Path) -> None:
    journals = sorted(p.name for p in output_dir.iterdir() if JOURNAL.match(p.name))
    if journals:
        raise PackagingError(f"{output_dir}: the run did not finish ({journals[0]} is still there); finish it "
                             "(python -m inference ... --resume) before packaging")
    has_masks = (output_dir / "Segmentation").is_dir()
    if not has_masks and not any((output_dir / name).is_file() for name in PREDICTION_FILES):
        raise PackagingError(f"{output_dir}: no prediction file ({', '.join(PREDICTION_FILES)}) and no Segmentation/ "
                             "folder: not a run's output folder")


def write_zip(output_dir: Path, zip_file: Path) -> tuple[int, list[str]]:
    """Write the archive atomically; return the number of files stored and the names left out."""
    output_dir = Path(output_dir)
    check_finished(output_dir)
    keep, left_out = entries(output_dir, zip_file)
    zip_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_file.name}.", suffix=".part", dir=zip_file.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, name in keep:
                archive.write(path, name)
        os.chmod(tmp, 0o644)
        os.replace(tmp, zip_file)
    except OSError as exc:
        raise PackagingError(f"{zip_file}: cannot write the archive ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sum(1 for _, name in keep if not name.endswith("/")), left_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zip_predictions.py", description=__doc__.split("\n\n")[2].replace("\n", " "),
                                     epilog=__doc__.split("\n\n")[3].replace("\n", " "))
    parser.add_argument("output_dir", type=Path, help="the finished run's output folder")
    parser.add_argument("zip_file", type=Path, help="the archive to write, e.g. dist/predictions.zip")
    args = parser.parse_args(argv)
    if not args.output_dir.is_dir():
        print(f"zip_predictions.py: error: {args.output_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        files, left_out = write_zip(args.output_dir, args.zip_file)
    except PackagingError as exc:
        print(f"zip_predictions.py: error: {exc}", file=sys.stderr)
        return 1
    size = args.zip_file.stat().st_size / 2**20
    note = f"; left out the run's own {', '.join(left_out)}" if left_out else ""
    print(f"{args.zip_file}: {files} file{'' if files == 1 else 's'} from {args.output_dir} ({size:.1f} MiB){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
