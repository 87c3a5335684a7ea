"""Writing a ready Triton model repository that serves a MILCO checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from milco_os.model.config import CONFIG_FILE, WEIGHT_FILES, CheckpointError, MilcoConfig, check_precision
from milco_os.encoding.pruning import PruneSpec
from milco_os.resources import resource_dir
from milco_os.serving.export_record import export_parameters
from milco_os.serving.model_code import REQUIREMENTS, copy_runtime_code
from milco_os.serving.triton_entry import REQUIREMENTS_FILE

MODEL_TEMPLATE = "milco"
OUTPUTS = (("EN_IDS", "TYPE_INT32", "-1"), ("EN_WEIGHTS", "TYPE_FP32", "-1"), ("EN_COUNT", "TYPE_INT32", "1"),
           ("M_IDS", "TYPE_INT32", "-1"), ("M_WEIGHTS", "TYPE_FP32", "-1"), ("M_COUNT", "TYPE_INT32", "1"),
           ("EN_VOCAB", "TYPE_STRING", "-1"), ("M_VOCAB", "TYPE_STRING", "-1"), ("SPARSE_JSON", "TYPE_STRING", "1"))
KINDS = {"auto": None, "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
MAX_BATCH_SIZES = {"gpu": 128, "cpu": 64, "auto": 64}
GPU_PREFERRED_BATCH_SIZES = (32, 64, 128)
QUEUE_DELAY_US = 2000


def default_max_batch_size(device: str) -> int:
    """Texts per model execution: 128 on a GPU (a 560M model is still efficient there), 64 otherwise."""
    return MAX_BATCH_SIZES[device]


def batching_block(device: str, max_batch_size: int, preferred: Sequence[int] | None, queue_delay_us: int) -> str:
    """``dynamic_batching``: on a GPU, batches the scheduler prefers to wait for (those within the maximum)."""
    if preferred is None:
        preferred = [size for size in GPU_PREFERRED_BATCH_SIZES if size <= max_batch_size] if device == "gpu" else []
    too_big = [size for size in preferred if not 0 < size <= max_batch_size]
    if too_big:
        raise ValueError(f"preferred batch sizes {too_big} are not within 1..max_batch_size ({max_batch_size})")
    lines = [f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]"] if preferred else []
    lines.append(f"  max_queue_delay_microseconds: {queue_delay_us}")
    return "dynamic_batching {\n" + "\n".join(lines) + "\n}\n"


def instance_group(device: str, instances: int, gpus: Sequence[int]) -> str:
    """``count`` instances of the model (per GPU listed in ``gpus``, or on every GPU when none is)."""
    kind = KINDS[device]
    if gpus and kind != "KIND_GPU":
        raise ValueError("GPU ids are for --device gpu")
    fields = ([f"kind: {kind}"] if kind else []) + [f"count: {instances}"]
    if gpus:
        fields.append(f"gpus: [ {', '.join(map(str, gpus))} ]")
    return f"instance_group [\n  {{ {', '.join(fields)} }}\n]\n"


def model_config(*, name: str = "milco", max_batch_size: int | None = None, device: str = "auto", instances: int = 1,
                 gpus: Sequence[int] = (), preferred_batch_sizes: Sequence[int] | None = None,
                 queue_delay_us: int = QUEUE_DELAY_US, prune: str = "none", checkpoint: str = "checkpoint",
                 max_length: str = "", echo: bool = True, precision: str = "auto",
                 recorded: Mapping[str, str] | None = None) -> str:
    """The ``config.pbtxt`` text; ``device`` auto lets Triton use GPUs when it has some; ``recorded``: parameters
    that record how the repository was made (``export_record``)."""
    max_batch_size = max_batch_size or default_max_batch_size(device)
    check_precision(precision)
    outputs = ",\n".join(f'  {{ name: "{n}", data_type: {t}, dims: [ {d} ] }}' for n, t, d in OUTPUTS)
    parameters = (("checkpoint", checkpoint), ("prune", str(PruneSpec.parse(prune))), ("max_length", max_length),
                  ("echo", "true" if echo else "false"), ("precision", precision), *(recorded or {}).items())
    parameter_lines = ",\n".join(f'  {{ key: "{k}", value: {{ string_value: "{v}" }} }}' for k, v in parameters)
    return (
        "# MILCO sparse encoder. Put a MILCO checkpoint directory at 1/checkpoint (or point the\n"
        "# \"checkpoint\" parameter at one), or let `milco-os triton export` write a ready repository.\n"
        "# Without an instance_group kind, Triton uses the GPUs when there are some, else the CPU.\n"
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n'
        'input [\n  { name: "TEXT", data_type: TYPE_STRING, dims: [ 1 ] }\n]\n'
        f"output [\n{outputs}\n]\n"
        + batching_block(device, max_batch_size, preferred_batch_sizes, queue_delay_us)
        + instance_group(device, instances, gpus)
        + f"parameters [\n{parameter_lines}\n]\n"
    )


def copy_checkpoint(source: Path, destination: Path) -> None:
    """Hard-link the checkpoint's files when the file system allows it, else copy them."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            target = destination / path.name
            target.unlink(missing_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)


def export_repository(checkpoint: Path, out: Path, *, name: str = "milco", device: str = "auto",
                      instances: int = 1, gpus: Sequence[int] = (), max_batch_size: int | None = None,
                      preferred_batch_sizes: Sequence[int] | None = None, queue_delay_us: int = QUEUE_DELAY_US,
                      prune: str = "none", precision: str = "auto", reference: bool = False) -> Path:
    """Write ``out/<name>/`` and return the model folder: ``config.pbtxt`` (recording this milco-os version and the
    checkpoint's hash), and in ``1/`` the entry point ``model.py``, the milco-os code it runs, its
    ``requirements.txt`` and the checkpoint."""
    MilcoConfig.read(checkpoint / CONFIG_FILE)
    if not any((checkpoint / f).is_file() for f in WEIGHT_FILES):
        raise CheckpointError(f"{checkpoint} holds no weights: expected model.safetensors or pytorch_model.bin.")
    model_dir = out / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(resource_dir("triton_models") / MODEL_TEMPLATE / "1" / "model.py", version_dir / "model.py")
    copy_runtime_code(version_dir)
    shutil.copy2(REQUIREMENTS, version_dir / REQUIREMENTS_FILE)
    if reference:
        checkpoint_value = str(checkpoint.resolve())
    else:
        copy_checkpoint(checkpoint, version_dir / "checkpoint")
        checkpoint_value = "checkpoint"
    (model_dir / "config.pbtxt").write_text(model_config(
        name=name, max_batch_size=max_batch_size, device=device, instances=instances, gpus=gpus,
        preferred_batch_sizes=preferred_batch_sizes, queue_delay_us=queue_delay_us, prune=prune,
        checkpoint=checkpoint_value, precision=precision, recorded=export_parameters(checkpoint)))
    return model_dir
