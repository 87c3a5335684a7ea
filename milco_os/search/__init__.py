"""Querying MILCO indices: DSL builders, searching, evaluation."""

from milco_os.search.searcher import SearchHit, SearchOptions, search

__all__ = ["SearchHit", "SearchOptions", "search"]
