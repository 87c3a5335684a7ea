"""Hybrid search: BM25 and MILCO fused into one ranking, by the cluster where it can, else here the same way.

``search_fused`` takes the MILCO body the index's vector field built (its ``depth`` best hits)
and a BM25 ``multi_match`` under the same filters. The cluster fuses them itself
(``cluster_fusion``) unless told otherwise or unable; otherwise both lists are fetched and
fused here as that cluster would (``ClusterFusion.fuse_here``), and the result says which happened and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from milco_os.engines.base import ErrorKind, plain
from milco_os.errors import MilcoOsError
from milco_os.index.handle import IndexHandle
from milco_os.search import query_dsl as dsl
from milco_os.search.cluster_fusion import cluster_fusion
from milco_os.search.fusion import Fusion, fuse

CLUSTER, CLIENT, AUTO = "cluster", "client", "auto"
FUSE_IN = (AUTO, CLUSTER, CLIENT)
# Errors after which the same fusion is done here: the cluster does not know the query or retriever, or its licence
# or the user's role does not allow it (a pipeline milco-os may not install).
FALL_BACK_ON = (ErrorKind.BAD_REQUEST, ErrorKind.AUTHORIZATION, ErrorKind.NOT_FOUND)


@dataclass(frozen=True)
class FusedHit:
    id: str
    score: float
    source: dict
    parts: tuple[float | None, float | None] | None  # the raw BM25 and MILCO scores, where fetched


@dataclass(frozen=True)
class FusedResult:
    hits: list[FusedHit]
    fused_by: str  # where and how, in words


def bm25_query(text: str, text_fields: Sequence[str]) -> dict:
    return {"multi_match": {"query": text, "fields": list(text_fields)}}


def search_fused(index: IndexHandle, text: str, milco_body: dict, fusion: Fusion, *, size: int, from_: int,
                 source: bool | list[str], filters: Sequence[dict], text_fields: Sequence[str], fuse_in: str = AUTO,
                 with_parts: bool = False) -> FusedResult:
    """The page ``from_``..``from_ + size`` of the fused ranking of BM25 on ``text_fields`` and ``milco_body``."""
    if fuse_in not in FUSE_IN:
        raise ValueError(f"fuse_in must be one of {', '.join(FUSE_IN)}, not {fuse_in!r}")
    bm25 = dsl.with_filters(bm25_query(text, text_fields), filters)
    fuser = cluster_fusion(index.engine)
    reason = "asked to fuse here" if fuse_in == CLIENT else fuser.refusal(fusion, milco_body)
    if reason and fuse_in == CLUSTER:
        raise MilcoOsError(f"index '{index.name}': the cluster cannot fuse this hybrid search: {reason}",
                           hint="leave out --fuse-in cluster to fuse the two lists here the same way.")
    if not reason:
        page = {"size": size, "from": from_, "_source": source}
        try:
            response, how = fuser.search(index.name, (bm25, milco_body["query"]), fusion, page)
        except Exception as exc:
            if fuse_in == CLUSTER or index.engine.classify(exc) not in FALL_BACK_ON:
                raise
            reason = f"the cluster refused to fuse ({index.engine.reason(exc)})"
        else:
            parts = lists_parts(index, bm25, milco_body, fusion) if with_parts else {}
            hits = [FusedHit(hit["_id"], hit["_score"], hit.get("_source", {}), parts.get(hit["_id"]))
                    for hit in response["hits"]["hits"]]
            return FusedResult(hits, f"fused in the cluster: {how}")
    lists, sources = fetch_lists(index, bm25, milco_body, fusion, source)
    fused = fuser.fuse_here(lists, fusion)[from_:from_ + size]  # scored as the cluster would
    hits = [FusedHit(hit.id, hit.score, sources[hit.id], hit.parts) for hit in fused]
    return FusedResult(hits, f"fused here ({fusion.describe(fuser.weights(fusion))}): {reason}")


def fetch_lists(index: IndexHandle, bm25: dict, milco_body: dict, fusion: Fusion,
                source: bool | list[str]) -> tuple[list[list[tuple[str, float]]], dict[str, dict]]:
    """The BM25 and the MILCO list (``fusion.depth`` best each) and every hit's ``_source``."""
    lists, sources = [], {}
    for body in ({"query": bm25}, milco_body):
        response = plain(index.client.search(index=index.name, body={**body, "size": fusion.depth, "from": 0,
                                                                      "_source": source}))
        hits = response["hits"]["hits"]
        lists.append([(hit["_id"], hit["_score"]) for hit in hits])
        sources.update((hit["_id"], hit.get("_source", {})) for hit in hits)
    return lists, sources


def lists_parts(index: IndexHandle, bm25: dict, milco_body: dict,
                fusion: Fusion) -> dict[str, tuple[float | None, float | None]]:
    """Each document's raw BM25 and MILCO scores, from the two lists fetched on their own."""
    lists, _ = fetch_lists(index, bm25, milco_body, fusion, False)
    return {hit.id: hit.parts for hit in fuse(lists, fusion)}
