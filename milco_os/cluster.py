"""Connecting to a cluster (OpenSearch or Elasticsearch, told or detected) and turning client errors into
messages users can act on."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from milco_os.engines import ENGINES, ErrorKind, OpenSearchEngine, engine_of_error
from milco_os.engines.base import cluster_hosts
from milco_os.managed_clusters import AwsSigning
from milco_os.errors import ClusterUnavailableError, CredentialsError, IndexMissingError, MilcoOsError, TlsError

BACKENDS = ("auto", *ENGINES)
# The TLS alerts of a server that wants a client certificate and got none, or one it does not trust.
CLIENT_CERTIFICATE_REFUSED = re.compile(r"ALERT_BAD_CERTIFICATE|ALERT_CERTIFICATE_REQUIRED|ALERT_UNKNOWN_CA|"
                                        r"certificate required", re.I)
# How AWS words a refused signature or token, whatever the endpoint (OpenSearch Service, Serverless).
AWS_REFUSAL = re.compile(r"signature|security token|Authentication Token|Credential should be scoped", re.I)
UNUSABLE_INDEX = ("index_not_found_exception", "index_closed_exception")  # error types of a missing or closed index


def make_client(url: str, *, backend: str = "auto", user: str | None = None, password: str | None = None,
                api_key: str | None = None, ca_certs: str | None = None, verify_certs: bool = True,
                timeout: float = 60, max_retries: int = 5, aws: AwsSigning | None = None,
                client_cert: str | None = None, client_key: str | None = None) -> Any:
    """A client of the cluster at ``url``: opensearch-py for OpenSearch, elasticsearch for Elasticsearch.

    ``backend="auto"`` asks the cluster's root endpoint which engine it is (AWS-signed clusters
    are OpenSearch). Clients retry 502/503/504 and timeouts; https certificates are verified
    (against ``ca_certs`` when given) unless ``verify_certs`` is false; requests are signed
    with AWS SigV4 when ``aws`` is given, else basic auth when a user is given, else an API
    key; ``client_cert`` (and ``client_key``) is presented to clusters that require one.
    """
    options = dict(user=user, password=password, api_key=api_key, ca_certs=ca_certs, verify_certs=verify_certs,
                   timeout=timeout, max_retries=max_retries, aws=aws, client_cert=client_cert,
                   client_key=client_key)
    if backend == "auto":
        engine = OpenSearchEngine.name if aws else detect_backend(url, **options)
    else:
        engine = backend
    if engine not in ENGINES:
        raise MilcoOsError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    return ENGINES[engine].make_client(url, **options)


def detect_backend(url: str, **options: Any) -> str:
    """'opensearch' when the root endpoint says so, else 'elasticsearch' (whose test builds may lack it: 405)."""
    probe = OpenSearchEngine.make_client(url, **options)
    try:
        info = probe.transport.perform_request("GET", "/")
    except Exception as exc:
        if OpenSearchEngine.status(exc) == 405:
            return "elasticsearch"
        raise
    finally:
        probe.close()
    return "opensearch" if info.get("version", {}).get("distribution") == "opensearch" else "elasticsearch"


def redact_url(url: str) -> str:
    """``url`` (or each of several comma-separated) without any ``user:password@`` part."""
    if "," in url:
        return ",".join(redact_url(host) for host in cluster_hosts(url))
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def cluster_error(exc: BaseException, url: str, user: str | None = None, signed: str | None = None) -> MilcoOsError:
    """A client exception as one message naming the host, with what to do and the matching exit code; ``signed``
    names the AWS service and region requests were signed for, if they were."""
    engine = engine_of_error(exc)
    if engine is None:
        raise TypeError(f"not a cluster client error: {exc!r}")
    kind, reason = engine.classify(exc), engine.reason(exc)
    if kind is ErrorKind.TLS and CLIENT_CERTIFICATE_REFUSED.search(reason):
        return TlsError(f"the cluster at {url} refused the TLS connection: it requires a client certificate signed "
                        f"by a CA it trusts ({reason})",
                        hint="give --client-cert and --client-key (or MILCO_OS_CLIENT_CERT / MILCO_OS_CLIENT_KEY).")
    if kind is ErrorKind.TLS:
        return TlsError(f"TLS verification of {url} failed: {reason}",
                        hint="pass the cluster's CA bundle with --ca-certs (or MILCO_OS_CA_CERTS); "
                             "--insecure skips verification and is unsafe.")
    if kind is ErrorKind.CONNECTION:
        return ClusterUnavailableError(f"cannot reach the cluster at {url}: {reason}",
                                       hint="check --url, that the cluster runs, and the network between.")
    if kind is ErrorKind.AUTHENTICATION:
        who = f"user '{user}'" if user else "no user"
        return CredentialsError(f"the cluster at {url} refused the credentials (HTTP 401, {who})",
                                hint="check --user and --password or --api-key (or MILCO_OS_USER / "
                                     "MILCO_OS_PASSWORD / MILCO_OS_API_KEY).")
    if kind in (ErrorKind.AUTHORIZATION, ErrorKind.AUTHENTICATION) and (signed or AWS_REFUSAL.search(reason)):
        how = f", signed for {signed}" if signed else ""
        return CredentialsError(f"the cluster at {url} refused the AWS-signed request (HTTP "
                                f"{engine.status(exc)}{how}){': ' + reason if reason else ''}",
                                hint="check the AWS credentials (environment, AWS_PROFILE or the instance role) "
                                     "and that --aws-region and --aws-sigv4 (es or aoss) match the endpoint.")
    if kind is ErrorKind.AUTHORIZATION:
        return CredentialsError(f"the cluster at {url} denied the request (HTTP 403): {reason}",
                                hint="grant the user write access to the index (and, for setup, the ingest "
                                     "pipeline permissions), or use a user that has it.")
    if kind is ErrorKind.CONFIGURATION:
        return MilcoOsError(f"the connection to {url} is misconfigured: {reason}")
    if engine.error_type(exc) in UNUSABLE_INDEX:
        state = "is closed" if engine.error_type(exc) == "index_closed_exception" else "does not exist"
        return IndexMissingError(f"index '{engine.error_index(exc) or '?'}' {state} on the cluster at {url} ({reason})",
                                 hint="check --index (an alias must point at an index); a closed index is opened "
                                      "with POST INDEX/_open.")
    lacks_rank_features = "rank_features" in reason and "does not exist" in reason
    return MilcoOsError(f"the cluster at {url} answered HTTP {engine.status(exc)}: {reason}",
                        hint="this cluster has no rank_features field (no mapper-extras module): on "
                             "Elasticsearch 8.11+ use --vector-field sparse_vector." if lacks_rank_features
                        else None)
