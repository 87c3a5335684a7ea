"""OpenSearch encodes with MILCO itself: ml-commons connectors to Triton, remote models, ingest and search pipelines."""
