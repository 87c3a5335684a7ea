"""Who runs the services, and where their files live so that user can reach them.

OpenSearch refuses to run as root. When milco-os itself runs as root it starts
services as an unprivileged user (``nobody`` unless ``MILCO_OS_SERVICE_USER``
names another) and keeps their files where that user can reach them.
"""

from __future__ import annotations

import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from milco_os.errors import MissingToolError
from milco_os.paths import cache_dir

SERVICE_USER_ENV = "MILCO_OS_SERVICE_USER"


@dataclass(frozen=True)
class ServiceUser:
    """An account to drop privileges to before starting a service."""

    name: str
    uid: int
    gid: int


def service_user() -> ServiceUser | None:
    """The account services run as: ``None`` (the current user) unless running as root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(SERVICE_USER_ENV, "nobody")
    try:
        entry = pwd.getpwnam(name)
    except KeyError as exc:
        raise MissingToolError(
            f"Running as root, milco-os starts services as the unprivileged user '{name}', which does not exist.",
            hint=f"create that user or set {SERVICE_USER_ENV} to an existing unprivileged user.",
        ) from exc
    return ServiceUser(name, entry.pw_uid, entry.pw_gid)


def reachable_by_others(path: Path) -> bool:
    """True when every folder from / down to ``path`` can be traversed by any user."""
    for folder in [path, *path.parents]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def services_root(user: ServiceUser | None) -> Path:
    """Where service installs and runtime folders live: the cache, unless ``user`` cannot reach it."""
    cache = cache_dir()
    if user is None or reachable_by_others(cache):
        root = cache / "services"
    else:
        root = Path(tempfile.gettempdir()) / "milco-os-services"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


def hand_over(path: Path, user: ServiceUser | None) -> None:
    """Give ``user`` ownership of ``path`` and everything below it."""
    if user is None:
        return
    for folder, subfolders, files in os.walk(path):
        os.chown(folder, user.uid, user.gid)
        for name in subfolders + files:
            os.chown(os.path.join(folder, name), user.uid, user.gid, follow_symlinks=False)
