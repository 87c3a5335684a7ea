"""What an export writes into a model repository about its making: the milco-os version and the checkpoint's hash.

Both are ``config.pbtxt`` parameters (named in ``encoding/served_model``, where clients read
them back); ``triton serve`` reads them from the file and warns when the model was exported
by another milco-os version than its own.
"""

from __future__ import annotations

from pathlib import Path

from milco_os import __version__
from milco_os.encoding.fingerprint import fingerprint
from milco_os.encoding.served_model import CHECKPOINT_PARAMETER, VERSION_PARAMETER, served_version, version_mismatch


def export_parameters(checkpoint: Path) -> dict[str, str]:
    return {VERSION_PARAMETER: __version__, CHECKPOINT_PARAMETER: fingerprint(checkpoint)}


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
