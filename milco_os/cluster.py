"""Cluster clients: opensearch-py with retries on transient failures."""

from __future__ import annotations

from opensearchpy import OpenSearch

RETRY_ON_STATUS = (502, 503, 504)


def make_client(url: str, *, user: str | None = None, password: str | None = None, ca_certs: str | None = None,
                verify_certs: bool = True, timeout: float = 60, max_retries: int = 5) -> OpenSearch:
    """A client for ``url`` that retries 502/503/504 and timeouts; basic auth when a user is given.

    https certificates are verified (against ``ca_certs`` when given) unless ``verify_certs`` is false.
    """
    return OpenSearch(
        hosts=[url],
        http_auth=(user, password or "") if user else None,
        verify_certs=verify_certs,
        ssl_show_warn=verify_certs,
        ca_certs=ca_certs,
        timeout=timeout,
        max_retries=max_retries,
        retry_on_status=RETRY_ON_STATUS,
        retry_on_timeout=True,
    )
