"""milco-os: MILCO multilingual learned sparse retrieval for OpenSearch and Elasticsearch."""

__version__ = "0.1.0"
