"""Errors the tool reports to users: one clear message, what to do, and the evidence."""

from __future__ import annotations


class MilcoOsError(Exception):
    """An error with a user-facing message, an optional hint and an optional log excerpt."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_tail = log_tail

    def __str__(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(f"What to do: {self.hint}")
        if self.log_tail:
            parts.append("Last lines of the log:\n" + self.log_tail)
        return "\n".join(parts)


class MissingToolError(MilcoOsError):
    """A program the tool needs (java, mvn, tritonserver) is not installed or too old."""

    exit_code = 3


class ServiceError(MilcoOsError):
    """A service (OpenSearch node, tritonserver) could not be provisioned, started or stopped."""

    exit_code = 4


# Seconds a job waits for a cluster or Triton server that stops answering before it stops with its checkpoint.
UNAVAILABLE_TIMEOUT_S = 120.0


class ClusterUnavailableError(ServiceError):
    """The cluster cannot be reached, or stopped answering for longer than the job waits."""


class IndexUnavailableError(MilcoOsError):
    """The index refused every write for longer than the job waits: a block, a closed or missing index, a missing
    permission, a mapping without the product's fields. Nothing of it was dead-lettered."""

    exit_code = 11


class IndexMissingError(MilcoOsError):
    """A command's index does not exist or is closed."""

    exit_code = 13


class ReindexError(MilcoOsError):
    """A reindex or enrich that cannot go on as asked (a clashing mapping, an alias that cannot move)."""

    exit_code = 8


class CredentialsError(MilcoOsError):
    """The cluster refused the credentials (401) or the user's permissions (403)."""

    exit_code = 9


class TlsError(MilcoOsError):
    """The cluster's TLS certificate could not be verified."""

    exit_code = 10
