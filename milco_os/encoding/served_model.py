"""What a served MILCO model's configuration records about its making, read by the clients that call it.

The export writes these as ``config.pbtxt`` parameters (``serving/export_record``); a client
reads them through Triton's model-config API and warns when the model was exported by
another milco-os version than its own.
"""

from __future__ import annotations

from milco_os import __version__

VERSION_PARAMETER = "milco_os_version"
CHECKPOINT_PARAMETER = "checkpoint_sha256"


def version_mismatch(exported_with: str | None, where: str) -> str | None:
    """A warning when ``where`` was exported by another milco-os version than this one (None when it matches)."""
    if exported_with == __version__:
        return None
    made_by = f"milco-os {exported_with}" if exported_with else "a milco-os that recorded no version"
    return (f"{where} was exported with {made_by}, and this is milco-os {__version__}: "
            f"export the repository again with this version (milco-os triton export).")


def served_checkpoint(config: dict) -> str | None:
    """The checkpoint digest (``encoding/fingerprint``) a model's configuration records, or None."""
    return (config.get("parameters", {}).get(CHECKPOINT_PARAMETER) or {}).get("string_value") or None


def served_version(config: dict) -> str | None:
    """The version a model's configuration (Triton's model-config API, as JSON) records, or None."""
    return (config.get("parameters", {}).get(VERSION_PARAMETER) or {}).get("string_value") or None
