"""The seam between milco-os and the search engine: OpenSearch (opensearch-py) or Elasticsearch (elasticsearch).

Everything else talks to a cluster through the engine's client with the request
shapes both engines share; an ``Engine`` covers only what differs: client
construction and auth, the bulk helper, errors, point in time, scrolls, ignored 404s
and version detection. ``engine_for`` wraps a client a user already has.
"""

from __future__ import annotations

from milco_os.engines.base import ClusterVersion, Engine, ErrorKind, plain
from milco_os.engines.elasticsearch import ElasticsearchEngine
from milco_os.engines.opensearch import OpenSearchEngine

ENGINES: dict[str, type[Engine]] = {"opensearch": OpenSearchEngine, "elasticsearch": ElasticsearchEngine}


def engine_for(client: object) -> Engine:
    """The engine of an opensearch-py or elasticsearch client (an Engine is returned as it is)."""
    if isinstance(client, Engine):
        return client
    module = type(client).__module__
    for engine in ENGINES.values():
        if module.split(".")[0] == engine.client_module:
            return engine(client)
    raise TypeError(f"milco-os works with opensearch-py or elasticsearch clients, not {type(client).__name__}")


def engine_of_error(exc: BaseException) -> type[Engine] | None:
    """The engine whose client raised ``exc``, or None when it is no cluster client's error."""
    return next((engine for engine in ENGINES.values() if engine.classify(exc) is not None), None)


def classify_error(exc: BaseException) -> ErrorKind | None:
    """What kind of cluster failure ``exc`` is, whichever client raised it."""
    engine = engine_of_error(exc)
    return engine.classify(exc) if engine else None


__all__ = ["ENGINES", "ClusterVersion", "ElasticsearchEngine", "Engine", "ErrorKind", "OpenSearchEngine",
           "classify_error", "engine_for", "engine_of_error", "plain"]
