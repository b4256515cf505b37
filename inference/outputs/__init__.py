"""Outputs: where predictions go.

- ``writers``: masks and JSON files written atomically, never outside the output folder (``OutputGuard``);
- ``results``: a run's records, failures and fallbacks, and the three JSON files written from them.
"""
