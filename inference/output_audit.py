"""After a batch run: say where the outputs went, and warn about files this run did not write.

The runtime never deletes anything in the output folder. A folder that already held the
results of another run (other CSVs, other masks) would silently mix them with this run's;
``audit_outputs`` makes that visible with one WARNING line: the count of files under the
output folder that this run did not write, and the first few of their paths.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

SHOWN = 5
BOOKKEEPING = ".fmc-"  # the run's own lock and journal files (inference.lock, inference.journal)


def audit_outputs(output_dir: Path, written: Iterable[Path], warn_stale: bool = True) -> str:
    """Log the WARNING for stale files (if any, and ``warn_stale``); return the closing INFO line (folder, file count)."""
    output_dir = Path(output_dir)
    ours = {Path(p).resolve() for p in written}
    present = sorted(p for p in output_dir.rglob("*") if p.is_file() and not p.name.startswith(BOOKKEEPING))
    mine = [p for p in present if p.resolve() in ours]
    stale = [p for p in present if p.resolve() not in ours]
    if stale and warn_stale:
        shown = ", ".join(str(p.relative_to(output_dir)) for p in stale[:SHOWN])
        more = f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
        log.warning("output folder %s holds %d file(s) this run did not write (left from another run?): %s%s; "
                    "nothing was deleted: use an empty --output folder to keep runs apart",
                    output_dir, len(stale), shown, more)
    masks = sum(1 for p in mine if p.suffix.lower() == ".png")
    return f"outputs: {len(mine)} files written to {output_dir} ({masks} mask PNGs, {len(mine) - masks} JSON files)"
