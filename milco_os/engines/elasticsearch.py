"""Elasticsearch 7.17, 8.x and 9.x through the official ``elasticsearch`` (8.x) client."""

from __future__ import annotations


import elastic_transport
import elasticsearch
from elasticsearch import Elasticsearch

from milco_os.errors import MilcoOsError
from milco_os.managed_clusters import AwsSigning
from milco_os.engines.base import (
    POOL_MAXSIZE, UNAVAILABLE_STATUSES, Engine, ErrorKind, cluster_hosts, error_index_in, error_type_in, one_line,
    plain,
)


class ElasticsearchEngine(Engine):
    name = "elasticsearch"
    client_module = "elasticsearch"

    @classmethod
    def make_client(cls, url: str, *, user: str | None = None, password: str | None = None,
                    api_key: str | None = None, ca_certs: str | None = None, verify_certs: bool = True,
                    timeout: float = 60, max_retries: int = 5, pool_maxsize: int = POOL_MAXSIZE,
                    aws: AwsSigning | None = None, client_cert: str | None = None,
                    client_key: str | None = None) -> Elasticsearch:
        if aws:
            raise MilcoOsError("--aws-sigv4 signs for Amazon OpenSearch Service and OpenSearch Serverless: an "
                               "OpenSearch cluster", hint="use --backend opensearch (or leave it to auto).")
        return Elasticsearch(
            cluster_hosts(url),
            basic_auth=(user, password or "") if user else None,
            api_key=api_key,
            verify_certs=verify_certs,
            ssl_show_warn=verify_certs,
            ca_certs=ca_certs,
            request_timeout=timeout,
            max_retries=max_retries,
            retry_on_status=UNAVAILABLE_STATUSES,
            retry_on_timeout=True,
            connections_per_node=pool_maxsize,
            client_cert=client_cert,
            client_key=client_key,
        )

    @staticmethod
    def classify(exc: BaseException) -> ErrorKind | None:
        kinds = ((elastic_transport.TlsError, ErrorKind.TLS),
                 (elastic_transport.ConnectionError, ErrorKind.CONNECTION),
                 (elastic_transport.ConnectionTimeout, ErrorKind.CONNECTION),
                 (elasticsearch.AuthenticationException, ErrorKind.AUTHENTICATION),
                 (elasticsearch.AuthorizationException, ErrorKind.AUTHORIZATION),
                 (elasticsearch.NotFoundError, ErrorKind.NOT_FOUND),
                 (elasticsearch.BadRequestError, ErrorKind.BAD_REQUEST),
                 (elastic_transport.SerializationError, ErrorKind.BAD_REQUEST),
                 (elasticsearch.ApiError, ErrorKind.HTTP), (elastic_transport.TransportError, ErrorKind.HTTP),
                 (elasticsearch.UnsupportedProductError, ErrorKind.HTTP))
        return next((kind for cls, kind in kinds if isinstance(exc, cls)), None)

    @staticmethod
    def status(exc: BaseException) -> int | None:
        return exc.meta.status if isinstance(exc, elasticsearch.ApiError) else None

    @staticmethod
    def reason(exc: BaseException) -> str:
        if isinstance(exc, elasticsearch.ApiError):
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            if isinstance(error, dict):
                return one_line(error.get("reason") or error.get("type") or error)
            return one_line(error or exc.message)
        if isinstance(exc, elastic_transport.TransportError):
            cause: BaseException | None = exc.errors[0] if exc.errors else None
            return one_line(f"{exc.message}: {cause}" if cause is not None else exc.message)
        return one_line(exc)

    @staticmethod
    def error_type(exc: BaseException) -> str | None:
        return error_type_in(exc.body) if isinstance(exc, elasticsearch.ApiError) else None

    @staticmethod
    def error_index(exc: BaseException) -> str | None:
        return error_index_in(exc.body) if isinstance(exc, elasticsearch.ApiError) else None

    def bulk(self, operations: list[dict], pipeline: str | None = None) -> dict:
        return plain(self.client.bulk(operations=operations, **({"pipeline": pipeline} if pipeline else {})))

    @property
    def url(self) -> str:
        return ",".join(f"{node.config.scheme}://{node.config.host}:{node.config.port}{node.config.path_prefix}"
                        for node in self.client.transport.node_pool.all())

    def _version_number(self) -> str:
        try:
            return plain(self.client.info())["version"]["number"]
        except elasticsearch.ApiError as exc:
            if exc.meta.status != 405:  # a distribution without its root endpoint (integ-test builds)
                raise
        nodes = plain(self.client.nodes.info(node_id="_local"))["nodes"]
        return next(iter(nodes.values()))["version"]

    def open_pit(self, index: str, keep_alive: str) -> str:
        return plain(self.client.open_point_in_time(index=index, keep_alive=keep_alive))["id"]

    def close_pit(self, pit: str) -> None:
        self.client.options(ignore_status=404).close_point_in_time(id=pit)

    @property
    def pit_sort(self) -> list[dict]:
        return [{"_shard_doc": "asc"}]

    def supports_pit(self) -> bool:
        return self.version.major_minor >= (7, 12)

    def scroll(self, scroll_id: str, keep_alive: str) -> dict:
        return plain(self.client.scroll(scroll_id=scroll_id, scroll=keep_alive))

    def clear_scroll(self, scroll_id: str) -> None:
        self.client.options(ignore_status=404).clear_scroll(scroll_id=scroll_id)

    def get_pipeline(self, name: str) -> dict | None:
        return plain(self.client.options(ignore_status=404).ingest.get_pipeline(id=name)).get(name)
