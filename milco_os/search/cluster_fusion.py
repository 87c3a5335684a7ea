"""Each engine's own way to fuse a BM25 and a MILCO query into one ranking, where the cluster has one.

OpenSearch with neural-search 2.19+: a ``hybrid`` query of the two, through a search pipeline
milco-os installs under a name derived from its settings (``normalization-processor`` for
min-max and L2, ``score-ranker-processor`` for RRF). Elasticsearch: the ``rrf`` or the ``linear``
retriever (its version, licence and ``rank-rrf`` module permitting). A cluster answers the same
ranking as ``fuse_here`` over the two lists; where it cannot, ``refusal`` says why before any
request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from abc import ABC, abstractmethod
from typing import Sequence

from milco_os.engines.base import Engine, ErrorKind, plain
from milco_os.search.fusion import (
    ARITHMETIC, ELASTICSEARCH_EDGES, L2, MIN_MAX, NORMALIZING, RRF, Fused, Fusion, Ranked, fuse,
)

PIPELINE_PREFIX = "milco-os-hybrid-"
NEURAL_SEARCH = "opensearch-neural-search"
HYBRID_SINCE = (2, 19)  # pagination_depth and the score-ranker-processor
WEIGHTED_RRF_SINCE = (3, 0)
RRF_RETRIEVER_SINCE = (8, 14)
LINEAR_RETRIEVER_SINCE = (8, 18)
L2_NORM_IN = (((8, 19), (9, 0)), ((9, 1), (99, 0)))  # the linear retriever's l2_norm: 8.19+ on 8.x, 9.1+ on 9.x
LINEAR_NORMALIZERS = {MIN_MAX: "minmax", L2: "l2_norm"}
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

    def fuse_here(self, lists: Sequence[Ranked], fusion: Fusion) -> list[Fused]:
        """The two lists fused here as this cluster would fuse them."""
        return fuse(lists, fusion, self.weights(fusion))


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


class ElasticsearchRetrievers(ClusterFusion):
    """Elasticsearch: the ``rrf`` retriever (equal weights) or the ``linear`` one (min-max or L2, weighted sum) over
    two ``standard`` retrievers, each where the version, its licence and the ``rank-rrf`` module permit."""

    def refusal(self, fusion: Fusion, milco_body: dict) -> str | None:
        if "rescore" in milco_body:
            return "the MILCO query rescores its hits, which a standard retriever does not"
        version = self.engine.version.major_minor
        if fusion.technique == RRF:
            if version < RRF_RETRIEVER_SINCE:
                return "the rrf retriever needs Elasticsearch 8.14+"
            if fusion.bm25_weight != 0.5:
                return "Elasticsearch's rrf retriever weighs its lists equally"
            return None
        if fusion.combination != ARITHMETIC:
            return f"Elasticsearch's linear retriever sums weighted scores (arithmetic_mean), not {fusion.combination}"
        if version < LINEAR_RETRIEVER_SINCE:
            return "the linear retriever needs Elasticsearch 8.18+"
        if fusion.technique == L2 and not any(low <= version < high for low, high in L2_NORM_IN):
            return "the linear retriever's l2_norm needs Elasticsearch 8.19+ or 9.1+"
        return None

    def weights(self, fusion: Fusion) -> tuple[float, float]:
        return (1.0, 1.0) if fusion.technique == RRF else fusion.weights

    def fuse_here(self, lists: Sequence[Ranked], fusion: Fusion) -> list[Fused]:
        return fuse(lists, fusion, self.weights(fusion), ELASTICSEARCH_EDGES)

    @staticmethod
    def request_body(queries: tuple[dict, dict], fusion: Fusion, page: dict) -> dict:
        """The ``rrf`` or ``linear`` retriever's search body."""
        window = max(fusion.depth, page["size"] + page.get("from", 0))
        if fusion.technique == RRF:
            return {**page, "retriever": {"rrf": {
                "retrievers": [{"standard": {"query": query}} for query in queries],
                "rank_window_size": window, "rank_constant": fusion.rank_constant}}}
        return {**page, "retriever": {"linear": {
            "retrievers": [{"retriever": {"standard": {"query": query}}, "weight": weight,
                            "normalizer": LINEAR_NORMALIZERS[fusion.technique]}
                           for query, weight in zip(queries, fusion.weights)],
            "rank_window_size": window}}}

    def search(self, index: str, queries: tuple[dict, dict], fusion: Fusion, page: dict) -> tuple[dict, str]:
        response = plain(self.engine.client.search(index=index, body=self.request_body(queries, fusion, page)))
        if fusion.technique == RRF:
            return response, f"rrf retriever, rank constant {fusion.rank_constant}"
        return response, f"linear retriever, {fusion.describe()}"


FUSERS: dict[str, type[ClusterFusion]] = {"opensearch": NeuralSearchPipeline, "elasticsearch": ElasticsearchRetrievers}


_FUSION_OF: weakref.WeakKeyDictionary[Engine, ClusterFusion] = weakref.WeakKeyDictionary()


def cluster_fusion(engine: Engine) -> ClusterFusion:
    """The engine's own fusion, one per engine while it lives, so what it learns (plugins, pipelines) is asked
    once."""
    if engine not in _FUSION_OF:
        _FUSION_OF[engine] = FUSERS[engine.name](engine)
    return _FUSION_OF[engine]
