"""Cluster clients: opensearch-py with retries on transient failures, and client errors users can act on."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConnectionError as TransportConnectionError,
    ImproperlyConfigured,
    SSLError,
    TransportError,
)

from milco_os.errors import ClusterUnavailableError, CredentialsError, MilcoOsError, TlsError

RETRY_ON_STATUS = (502, 503, 504)


def make_client(url: str, *, user: str | None = None, password: str | None = None, api_key: str | None = None,
                ca_certs: str | None = None, verify_certs: bool = True, timeout: float = 60,
                max_retries: int = 5) -> OpenSearch:
    """A client for ``url`` that retries 502/503/504 and timeouts; basic auth or an API key when given.

    https certificates are verified (against ``ca_certs`` when given) unless ``verify_certs`` is false.
    """
    return OpenSearch(
        hosts=[url],
        http_auth=(user, password or "") if user else None,
        headers={"Authorization": f"ApiKey {api_key}"} if api_key else None,
        verify_certs=verify_certs,
        ssl_show_warn=verify_certs,
        ca_certs=ca_certs,
        timeout=timeout,
        max_retries=max_retries,
        retry_on_status=RETRY_ON_STATUS,
        retry_on_timeout=True,
    )


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def client_url(client) -> str:
    """The (first) cluster URL a client talks to, without credentials."""
    host = client.transport.hosts[0]
    scheme = "https" if host.get("use_ssl") else "http"
    return f"{scheme}://{host['host']}:{host['port']}{host.get('url_prefix', '')}"


def cluster_error(exc: Exception, url: str, user: str | None = None) -> MilcoOsError:
    """A client exception as one message naming the host, with what to do and the matching exit code."""
    if isinstance(exc, SSLError):
        return TlsError(f"TLS verification of {url} failed: {_cause(exc)}",
                        hint="pass the cluster's CA bundle with --ca-certs (or MILCO_OS_CA_CERTS); "
                             "--insecure skips verification and is unsafe.")
    if isinstance(exc, TransportConnectionError):
        return ClusterUnavailableError(f"cannot reach the cluster at {url}: {_cause(exc)}",
                                       hint="check --url, that the cluster runs, and the network between.")
    if isinstance(exc, AuthenticationException):
        who = f"user '{user}'" if user else "no credentials"
        return CredentialsError(f"the cluster at {url} refused the credentials (HTTP 401, {who})",
                                hint="check --user and --password (or MILCO_OS_USER / MILCO_OS_PASSWORD).")
    if isinstance(exc, AuthorizationException):
        return CredentialsError(f"the cluster at {url} denied the request (HTTP 403): {_reason(exc)}",
                                hint="grant the user write access to the index (and, for setup, the ingest "
                                     "pipeline permissions), or use a user that has it.")
    if isinstance(exc, ImproperlyConfigured):
        return MilcoOsError(f"the connection to {url} is misconfigured: {exc}")
    if isinstance(exc, TransportError):
        return MilcoOsError(f"the cluster at {url} answered HTTP {exc.status_code}: {_reason(exc)}")
    raise TypeError(f"not a client error: {exc!r}")


def _reason(exc: TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        return str(error.get("reason") or error.get("type") or error)
    return str(error or exc.error)


def _cause(exc: TransportConnectionError) -> str:
    """The innermost reason of a connection failure, on one line (urllib3 nests them deeply)."""
    cause: BaseException | None = exc.info if isinstance(exc.info, BaseException) else None
    text = str(exc.error)
    while cause is not None:
        text = str(cause)
        cause = getattr(cause, "reason", None) or cause.__cause__
        if cause is not None and str(cause) == text:
            break
    return " ".join(text.split())[:300]
