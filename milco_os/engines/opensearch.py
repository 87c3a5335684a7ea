"""OpenSearch through opensearch-py."""

from __future__ import annotations


from opensearchpy import OpenSearch
from opensearchpy import exceptions as errors

from milco_os.managed_clusters import AwsSigning
from milco_os.engines.base import (
    POOL_MAXSIZE, UNAVAILABLE_STATUSES, Engine, ErrorKind, cluster_hosts, error_index_in, error_type_in, one_line,
)


class OpenSearchEngine(Engine):
    name = "opensearch"
    client_module = "opensearchpy"

    @classmethod
    def make_client(cls, url: str, *, user: str | None = None, password: str | None = None,
                    api_key: str | None = None, ca_certs: str | None = None, verify_certs: bool = True,
                    timeout: float = 60, max_retries: int = 5, pool_maxsize: int = POOL_MAXSIZE,
                    aws: AwsSigning | None = None, client_cert: str | None = None,
                    client_key: str | None = None) -> OpenSearch:
        return OpenSearch(
            hosts=cluster_hosts(url),
            http_auth=aws.auth() if aws else (user, password or "") if user else None,
            client_cert=client_cert,
            client_key=client_key,
            headers={"Authorization": f"ApiKey {api_key}"} if api_key else None,
            verify_certs=verify_certs,
            ssl_show_warn=verify_certs,
            ca_certs=ca_certs,
            timeout=timeout,
            max_retries=max_retries,
            retry_on_status=UNAVAILABLE_STATUSES,
            retry_on_timeout=True,
            pool_maxsize=pool_maxsize,
        )

    @staticmethod
    def classify(exc: BaseException) -> ErrorKind | None:
        kinds = ((errors.SSLError, ErrorKind.TLS), (errors.ConnectionError, ErrorKind.CONNECTION),
                 (errors.AuthenticationException, ErrorKind.AUTHENTICATION),
                 (errors.AuthorizationException, ErrorKind.AUTHORIZATION),
                 (errors.NotFoundError, ErrorKind.NOT_FOUND), (errors.RequestError, ErrorKind.BAD_REQUEST),
                 (errors.SerializationError, ErrorKind.BAD_REQUEST),
                 (errors.TransportError, ErrorKind.HTTP), (errors.ImproperlyConfigured, ErrorKind.CONFIGURATION))
        return next((kind for cls, kind in kinds if isinstance(exc, cls)), None)

    @staticmethod
    def status(exc: BaseException) -> int | None:
        status = getattr(exc, "status_code", None)
        return status if isinstance(status, int) else None

    @staticmethod
    def reason(exc: BaseException) -> str:
        if isinstance(exc, errors.ConnectionError):
            cause: BaseException | None = exc.info if isinstance(exc.info, BaseException) else None
            text = str(exc.error)
            while cause is not None:  # urllib3 nests the real reason deeply
                text = str(cause)
                cause = getattr(cause, "reason", None) or cause.__cause__
                if cause is not None and str(cause) == text:
                    break
            return one_line(text)
        if isinstance(exc, errors.TransportError):
            error = exc.info.get("error") if isinstance(exc.info, dict) else None
            if isinstance(error, dict):
                return one_line(error.get("reason") or error.get("type") or error)
            if error is None and isinstance(exc.info, dict) and exc.info.get("message"):
                return one_line(exc.info["message"])  # AWS's own refusals (a bad signature, a missing token)
            return one_line(error or exc.error)
        return one_line(exc)

    @staticmethod
    def error_type(exc: BaseException) -> str | None:
        return error_type_in(exc.info) if isinstance(exc, errors.TransportError) else None

    @staticmethod
    def error_index(exc: BaseException) -> str | None:
        return error_index_in(exc.info) if isinstance(exc, errors.TransportError) else None

    def bulk(self, operations: list[dict], pipeline: str | None = None) -> dict:
        return self.client.bulk(body=operations, **({"pipeline": pipeline} if pipeline else {}))

    @property
    def url(self) -> str:
        return ",".join(f"{'https' if host.get('use_ssl') else 'http'}://{host['host']}:{host['port']}"
                        f"{host.get('url_prefix', '')}" for host in self.client.transport.hosts)

    def _version_number(self) -> str:
        return self.client.info()["version"]["number"]

    def open_pit(self, index: str, keep_alive: str) -> str:
        # Never a PIT over some shards only: a page read from it would silently miss the others' documents.
        return self.client.create_pit(index=index, params={"keep_alive": keep_alive,
                                                           "allow_partial_pit_creation": "false"})["pit_id"]

    def close_pit(self, pit: str) -> None:
        self.client.delete_pit(body={"pit_id": [pit]}, ignore=(404,))

    @property
    def pit_sort(self) -> list[dict]:
        # No _shard_doc in OpenSearch; _id is unique, so a cursor stays valid under a new PIT too.
        return [{"_id": "asc"}]

    def supports_pit(self) -> bool:
        return self.version.major_minor >= (2, 4)

    def scroll(self, scroll_id: str, keep_alive: str) -> dict:
        return self.client.scroll(body={"scroll_id": scroll_id, "scroll": keep_alive})

    def clear_scroll(self, scroll_id: str) -> None:
        self.client.clear_scroll(body={"scroll_id": [scroll_id]}, ignore=(404,))

    def get_pipeline(self, name: str) -> dict | None:
        return self.client.ingest.get_pipeline(id=name, ignore=404).get(name)
