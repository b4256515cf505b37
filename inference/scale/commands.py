"""The scale-out subcommands of ``python -m inference``: their arguments, defined here once.

    python -m inference merge PARTS... --output OUT     (inference.scale.merge)
    python -m inference ray --input IN --output OUT     (inference.scale.ray_job)

Standard library only: the parser is built before anything heavy is imported, so ``--help``
stays instant; a command's module is imported when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inference.options import add_ray_arguments

MERGE_DESCRIPTION = "Join the parts of a --shard I/N run into the files a single run writes."
MERGE_EPILOG = """\
PARTS are part files (SHARD_OUT/shards/part-0000-of-0004.json: index and count in four
digits) or shard output folders (their shards/part-*.json). The parts must be every shard of
one split (same N, each index once), of the same model and the same input, with no row in two
parts. OUT then receives exactly what a single run writes: the three JSON files and, for parts
that lie in other folders, their masks. Part files inside OUT are removed afterwards
(--keep-parts keeps them).

exit codes: 0 merged; 1 the parts do not fit together (the message says which and how to fix
it) or OUT is not writable; 2 usage error; 3 merged, but some rows failed in the shards (their
fallback predictions are included, as in a single run).
"""
RAY_DESCRIPTION = ("The batch layout on a Ray cluster: the rows checked as python -m inference checks them, "
                   "the model in a pool of actors, the outputs equal to a single run's.")


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parts", nargs="+", type=Path, metavar="PART",
                        help="part file (OUT/shards/part-IIII-of-NNNN.json) or a shard's output folder")
    parser.add_argument("--output", type=Path, required=True, help="folder for the merged output")
    parser.add_argument("--keep-parts", action="store_true", help="keep part files that lie in --output")


def _merge(args: argparse.Namespace) -> int:
    from inference.scale.merge import run_merge

    return run_merge(args)


def _ray(args: argparse.Namespace) -> int:
    from inference.scale.ray_job import run_ray

    return run_ray(args)


def add_commands(commands) -> None:
    """``merge`` and ``ray`` as subparsers of ``python -m inference`` (``commands``: its ``add_subparsers``)."""
    merge = commands.add_parser("merge", help="join the parts of a --shard I/N run", description=MERGE_DESCRIPTION,
                                epilog=MERGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_merge_arguments(merge)
    merge.set_defaults(main=_merge)
    ray = commands.add_parser("ray", help="the batch job on a Ray cluster (requirements-ray.txt)",
                              description=RAY_DESCRIPTION)
    add_ray_arguments(ray)
    ray.set_defaults(main=_ray)
