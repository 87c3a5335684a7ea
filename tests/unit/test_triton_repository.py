"""``config.pbtxt`` for CPUs and GPUs: instance groups, batch sizes, precision."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from milco_os.cli import main
from milco_os.serving.triton_repository import model_config


def test_gpu_config_has_gpu_instances_and_preferred_batches() -> None:
    config = model_config(device="gpu", instances=2, gpus=(0, 1))
    assert "instance_group [\n  { kind: KIND_GPU, count: 2, gpus: [ 0, 1 ] }\n]" in config
    assert "max_batch_size: 128\n" in config
    assert "preferred_batch_size: [ 32, 64, 128 ]" in config
    assert "max_queue_delay_microseconds: 2000" in config


def test_preferred_batches_stay_within_the_maximum() -> None:
    assert "preferred_batch_size: [ 32, 64 ]" in model_config(device="gpu", max_batch_size=96)
    assert "preferred_batch_size: [ 8, 16 ]" in model_config(device="gpu", preferred_batch_sizes=(8, 16))
    with pytest.raises(ValueError, match="not within 1..max_batch_size"):
        model_config(device="gpu", max_batch_size=64, preferred_batch_sizes=(32, 128))


def test_cpu_and_auto_configs_wait_for_no_batch_size() -> None:
    for device in ("cpu", "auto"):
        config = model_config(device=device)
        assert "preferred_batch_size" not in config and "max_batch_size: 64\n" in config
    assert "{ kind: KIND_CPU, count: 1 }" in model_config(device="cpu")
    assert "{ count: 1 }" in model_config(device="auto")


def test_gpu_ids_and_unknown_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match="--device gpu"):
        model_config(device="cpu", gpus=(0,))
    with pytest.raises(ValueError, match="precision must be one of"):
        model_config(precision="int4")


def test_export_writes_the_gpu_settings(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["triton", "export", "--model", str(tiny_checkpoint), "--out",
                                       str(tmp_path / "repo"), "--device", "gpu", "--gpus", "1", "--instances", "2",
                                       "--preferred-batch-sizes", "16,32", "--max-batch-size", "32",
                                       "--precision", "fp16"])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "repo" / "milco" / "config.pbtxt").read_text()
    assert "{ kind: KIND_GPU, count: 2, gpus: [ 1 ] }" in config and "preferred_batch_size: [ 16, 32 ]" in config
    assert 'key: "precision", value: { string_value: "fp16" }' in config
    refused = CliRunner().invoke(main, ["triton", "export", "--model", str(tiny_checkpoint), "--out",
                                        str(tmp_path / "other"), "--gpus", "0"])
    assert refused.exit_code == 2 and "--device gpu" in refused.output
