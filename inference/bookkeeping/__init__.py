"""Run bookkeeping: what lets a run be stopped, resumed and trusted.

- ``journal``: finished rows, so ``--resume`` predicts only the rest;
- ``record_spool``: JSON records kept on disk until the files are written;
- ``hash_index``: 64-bit hashes looked up in flat memory (journal and audit);
- ``output_audit``: what a run wrote, and what else lies in the output folder;
- ``lock``: one run per output folder; ``signals``: SIGTERM/SIGINT end the current batch.
"""
