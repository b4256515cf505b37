"""Scale-out: one job over many processes or machines.

- ``shard``: ``--shard I/N``, a deterministic share of the rows written as a part file;
- ``merge``: ``python -m inference merge``, the parts joined into the files one run writes;
- ``ray_job``: the same job on Ray Data (``python -m inference ray``).
The Python API (``inference.api``) is what a worker of another framework calls.
"""
