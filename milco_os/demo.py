"""The end-to-end demo: a local node, a sample multilingual corpus indexed with MILCO vectors, a few queries.

Vectors are stored as two ``rank_features`` fields, one per view, keyed by term id;
a query is a bool of ``rank_feature`` clauses with the ``linear`` function and
boost = query weight, so the score is the MILCO dot product.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from opensearchpy import OpenSearch, helpers

from milco_os.model import MilcoEncoder
from milco_os.sparse import SparseVector, TermVocabulary

EN_FIELD = "milco_en"
M_FIELD = "milco_m"
DEMO_QUERIES = ("capital of Germany", "Hauptstadt", "столица", "東京", "search engine ranking", "نهر النيل")


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float
    text: str
    matched: dict[str, float]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def vector_fields(vector: SparseVector) -> dict[str, dict[str, float]]:
    return {
        EN_FIELD: {str(i): float(w) for i, w in zip(vector.en_ids.tolist(), vector.en_weights.tolist())},
        M_FIELD: {str(i): float(w) for i, w in zip(vector.m_ids.tolist(), vector.m_weights.tolist())},
    }


def create_index(client: OpenSearch, index: str) -> None:
    client.indices.create(index=index, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {
            "text": {"type": "text"}, "lang": {"type": "keyword"},
            EN_FIELD: {"type": "rank_features"}, M_FIELD: {"type": "rank_features"},
        }},
    })


def index_documents(client: OpenSearch, index: str, documents: list[dict], encoder: MilcoEncoder, prune: str) -> int:
    vectors = encoder.encode([doc["text"] for doc in documents], prune=prune)
    actions: Iterable[dict] = (
        {"_index": index, "_id": doc["id"], "_source": {**doc, **vector_fields(vector)}}
        for doc, vector in zip(documents, vectors)
    )
    indexed, _ = helpers.bulk(client, actions, refresh="wait_for")
    return indexed


def query_dsl(vector: SparseVector, size: int) -> dict:
    clauses = [
        {"rank_feature": {"field": f"{field}.{term_id}", "boost": weight, "linear": {}}}
        for field, ids, weights in ((EN_FIELD, vector.en_ids, vector.en_weights), (M_FIELD, vector.m_ids, vector.m_weights))
        for term_id, weight in zip(ids.tolist(), weights.tolist())
    ]
    return {"size": size, "query": {"bool": {"should": clauses}}}


def matched_terms(query: SparseVector, source: dict, vocabulary: TermVocabulary, top: int) -> dict[str, float]:
    """The heaviest per-term contributions (query weight x document weight), named."""
    contributions: dict[str, float] = {}
    for field, ids, weights, name in ((EN_FIELD, query.en_ids, query.en_weights, vocabulary.en_name),
                                      (M_FIELD, query.m_ids, query.m_weights, vocabulary.m_name)):
        stored = source.get(field, {})
        for term_id, weight in zip(ids.tolist(), weights.tolist()):
            if str(term_id) in stored:
                contributions[name(term_id)] = weight * stored[str(term_id)]
    return dict(sorted(contributions.items(), key=lambda item: -item[1])[:top])


def search(client: OpenSearch, index: str, encoder: MilcoEncoder, query: str, prune: str, size: int) -> list[Hit]:
    vector = encoder.encode([query], prune=prune)[0]
    response = client.search(index=index, body=query_dsl(vector, size))
    return [
        Hit(hit["_id"], hit["_score"], hit["_source"]["text"],
            matched_terms(vector, hit["_source"], encoder.vocabulary, top=4))
        for hit in response["hits"]["hits"]
    ]
