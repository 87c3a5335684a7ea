"""Each engine's own way to fuse a BM25 and a MILCO query into one ranking, where the cluster has one.

OpenSearch with neural-search 2.19+: a ``hybrid`` query of the two, through a search pipeline
milco-os installs under a name derived from its settings (``normalization-processor`` for
min-max and L2, ``score-ranker-processor`` for RRF). Elasticsearch: the ``rrf`` retriever
(its licence and the ``rank-rrf`` module permitting). A cluster answers the same ranking as
``fusion.fuse`` over the two lists; where it cannot, ``refusal`` says why before any request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from abc import ABC, abstractmethod

from milco_os.engines.base import Engine, ErrorKind, plain
from milco_os.search.fusion import NORMALIZING, RRF, Fusion

PIPELINE_PREFIX = "milco-os-hybrid-"
NEURAL_SEARCH = "opensearch-neural-search"
HYBRID_SINCE = (2, 19)  # pagination_depth and the score-ranker-processor
WEIGHTED_RRF_SINCE = (3, 0)
# Refusals of ``_cat/plugins`` that leave neural-search unknown (so fused here), not an error.
UNLISTED_PLUGINS = (ErrorKind.AUTHORIZATION, ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND)


class ClusterFusion(ABC):
    """One engine's fusion of two queries (BM25 first, MILCO second) in the cluster."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @abstractmethod
    def refusal(self, fusion: Fusion, milco_body: dict) -> str | None:
        """Why the cluster cannot fuse with ``fusion`` itself (None: it can)."""

    @abstractmethod
    def search(self, index: str, queries: tuple[dict, dict], fusion: Fusion, page: dict) -> tuple[dict, str]:
        """The fused search's response (``page``: size, from, _source) and how it was fused, in words."""

    def weights(self, fusion: Fusion) -> tuple[float, float]:
        """The weights the cluster gives the two lists."""
        return fusion.weights


class NeuralSearchPipeline(ClusterFusion):
    """OpenSearch: a ``hybrid`` query through a search pipeline that normalises and combines, or ranks (RRF)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.installed: set[str] = set()

    @functools.cached_property
    def plugin_version(self) -> tuple[int, int] | None:
        """neural-search's version on the node answering (None: not installed, or the cluster will not list its
        plugins, as OpenSearch Serverless), asked once."""
        try:
            plugins = plain(self.engine.client.cat.plugins(format="json"))
        except Exception as exc:
            if self.engine.classify(exc) not in UNLISTED_PLUGINS:
                raise
            return None
        found = next((p["version"] for p in plugins if p.get("component") == NEURAL_SEARCH), None)
        return tuple(int(part) for part in found.split(".")[:2]) if found else None

    def refusal(self, fusion: Fusion, milco_body: dict) -> str | None:
        version = self.plugin_version
        if version is None or version < HYBRID_SINCE:
            return "the cluster lists no neural-search 2.19+ (hybrid query and score pipelines)"
        if "rescore" in milco_body:
            return "the MILCO query rescores its hits, and a hybrid query would rescore the BM25 list too"
        if fusion.technique == RRF and version < WEIGHTED_RRF_SINCE and fusion.bm25_weight != 0.5:
            return "neural-search before 3.0 weighs the two lists of an RRF equally"
        return None

    def weights(self, fusion: Fusion) -> tuple[float, float]:
        version = self.plugin_version
        if fusion.technique == RRF and version is not None and version < WEIGHTED_RRF_SINCE:
            return 1.0, 1.0
        return fusion.weights

    def pipeline_body(self, fusion: Fusion) -> dict:
        """The search pipeline that fuses as ``fusion`` says (neural-search's own definitions of each step)."""
        weights = {"weights": list(fusion.weights)}
        description = f"milco-os hybrid: {fusion.describe(self.weights(fusion))}"
        if fusion.technique in NORMALIZING:
            return {"description": description, "phase_results_processors": [
                {"normalization-processor": {"normalization": {"technique": fusion.technique},
                                             "combination": {"technique": fusion.combination,
                                                             "parameters": weights}}}]}
        if self.plugin_version < WEIGHTED_RRF_SINCE:
            combination = {"technique": RRF, "parameters": {"rank_constant": fusion.rank_constant}}
        else:
            combination = {"technique": RRF, "rank_constant": fusion.rank_constant, "parameters": weights}
        return {"description": description, "phase_results_processors": [
            {"score-ranker-processor": {"combination": combination}}]}

    def pipeline(self, fusion: Fusion) -> str:
        """The name of the search pipeline for ``fusion``, installed once (a name per setting, so never stale)."""
        body = self.pipeline_body(fusion)
        name = PIPELINE_PREFIX + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
        if name not in self.installed:
            self.engine.client.transport.perform_request("PUT", f"/_search/pipeline/{name}", body=body)
            self.installed.add(name)
        return name

    @staticmethod
    def request_body(queries: tuple[dict, dict], fusion: Fusion, page: dict) -> dict:
        """The ``hybrid`` search body (sent with ``search_pipeline`` naming ``pipeline_body``'s pipeline)."""
        return {**page, "query": {"hybrid": {"queries": list(queries), "pagination_depth": fusion.depth}}}

    def search(self, index: str, queries: tuple[dict, dict], fusion: Fusion, page: dict) -> tuple[dict, str]:
        name = self.pipeline(fusion)
        body = self.request_body(queries, fusion, page)
        response = plain(self.engine.client.search(index=index, body=body, params={"search_pipeline": name}))
        return response, f"hybrid query through search pipeline {name}, {fusion.describe(self.weights(fusion))}"


class RrfRetriever(ClusterFusion):
    """Elasticsearch: the ``rrf`` retriever over two ``standard`` retrievers (RRF only, equal weights)."""

    def refusal(self, fusion: Fusion, milco_body: dict) -> str | None:
        if fusion.technique != RRF:
            return "milco-os fuses normalised scores in the cluster on OpenSearch only (Elasticsearch: rrf)"
        if self.engine.version.major_minor < (8, 14):
            return "the rrf retriever needs Elasticsearch 8.14+"
        if fusion.bm25_weight != 0.5:
            return "Elasticsearch's rrf retriever weighs its lists equally"
        if "rescore" in milco_body:
            return "the MILCO query rescores its hits, which a standard retriever does not"
        return None

    def weights(self, fusion: Fusion) -> tuple[float, float]:
        return 1.0, 1.0

    @staticmethod
    def request_body(queries: tuple[dict, dict], fusion: Fusion, page: dict) -> dict:
        """The ``rrf`` retriever's search body."""
        return {**page, "retriever": {"rrf": {
            "retrievers": [{"standard": {"query": query}} for query in queries],
            "rank_window_size": max(fusion.depth, page["size"] + page.get("from", 0)),
            "rank_constant": fusion.rank_constant}}}

    def search(self, index: str, queries: tuple[dict, dict], fusion: Fusion, page: dict) -> tuple[dict, str]:
        response = plain(self.engine.client.search(index=index, body=self.request_body(queries, fusion, page)))
        return response, f"rrf retriever, rank constant {fusion.rank_constant}"


FUSERS: dict[str, type[ClusterFusion]] = {"opensearch": NeuralSearchPipeline, "elasticsearch": RrfRetriever}


_FUSION_OF: weakref.WeakKeyDictionary[Engine, ClusterFusion] = weakref.WeakKeyDictionary()


def cluster_fusion(engine: Engine) -> ClusterFusion:
    """The engine's own fusion, one per engine while it lives, so what it learns (plugins, pipelines) is asked
    once."""
    if engine not in _FUSION_OF:
        _FUSION_OF[engine] = FUSERS[engine.name](engine)
    return _FUSION_OF[engine]
