"""What an exported model repository records about its making: the milco-os version and the checkpoint's hash.

Both are ``config.pbtxt`` parameters, so a client reads them through Triton's model-config
API and ``triton serve`` reads them from the file; either warns when the model was
exported by another milco-os version than its own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from milco_os import __version__

VERSION_PARAMETER = "milco_os_version"
CHECKPOINT_PARAMETER = "checkpoint_sha256"
CHUNK = 1 << 20


def checkpoint_sha256(checkpoint: Path) -> str:
    """One SHA-256 over the checkpoint folder's files (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in checkpoint.iterdir() if p.is_file()):
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def export_parameters(checkpoint: Path) -> dict[str, str]:
    return {VERSION_PARAMETER: __version__, CHECKPOINT_PARAMETER: checkpoint_sha256(checkpoint)}


def version_mismatch(exported_with: str | None, where: str) -> str | None:
    """A warning when ``where`` was exported by another milco-os version than this one (None when it matches)."""
    if exported_with == __version__:
        return None
    made_by = f"milco-os {exported_with}" if exported_with else "a milco-os that recorded no version"
    return (f"{where} was exported with {made_by}, and this is milco-os {__version__}: "
            f"export the repository again with this version (milco-os triton export).")


def served_version(config: dict) -> str | None:
    """The version a model's configuration (Triton's model-config API, as JSON) records, or None."""
    return (config.get("parameters", {}).get(VERSION_PARAMETER) or {}).get("string_value") or None


def repository_warnings(model_repository: Path) -> list[str]:
    """One warning per MILCO model of ``model_repository`` exported by another milco-os version."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    warnings = []
    for path in sorted(model_repository.glob("*/config.pbtxt")):
        config = text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
        if "checkpoint" not in config.parameters:  # not a MILCO model
            continue
        warning = version_mismatch(served_version(json_format.MessageToDict(config, preserving_proto_field_name=True)),
                                   f"model '{path.parent.name}'")
        if warning:
            warnings.append(warning)
    return warnings
