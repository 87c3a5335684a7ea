"""Documents in, MILCO documents out: sources, the ingest stages, bulk writing, checkpoints, reindex."""
