"""Loading checkpoints in the released layout, and clear errors for everything else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from milco_os.model import MilcoEncoder
from milco_os.model.checkpoint import CheckpointError
from milco_os.model.tiny import make_tiny_checkpoint


def copy_of(checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / "ckpt"))


def test_safetensors_and_bin_give_the_same_vectors(tmp_path: Path) -> None:
    bin_dir = make_tiny_checkpoint(tmp_path / "bin", seed=3)
    st_dir = make_tiny_checkpoint(tmp_path / "st", seed=3, safetensors=True)
    assert (st_dir / "model.safetensors").is_file() and not (st_dir / "pytorch_model.bin").exists()
    a = MilcoEncoder.from_pretrained(bin_dir).encode(["Hauptstadt Berlin"])[0]
    b = MilcoEncoder.from_pretrained(st_dir).encode(["Hauptstadt Berlin"])[0]
    assert a.en_ids.tolist() == b.en_ids.tolist() and a.m_ids.tolist() == b.m_ids.tolist()
    np.testing.assert_array_equal(a.en_weights, b.en_weights)
    np.testing.assert_array_equal(a.m_weights, b.m_weights)


def test_backbone_config_embedded_in_config_json_is_used(tiny_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_of(tiny_checkpoint, tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["backbone_config"] = {"vocab_size": config["m_vocab_size"], "hidden_size": 64, "num_hidden_layers": 1,
                                 "num_attention_heads": 1, "intermediate_size": 128,
                                 "max_position_embeddings": 130, "type_vocab_size": 1}
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unexpected .*encoder.layer.1"):
        MilcoEncoder.from_pretrained(directory)


def test_checkpoint_without_echo_has_only_the_english_view(tmp_path: Path) -> None:
    encoder = MilcoEncoder.from_pretrained(make_tiny_checkpoint(tmp_path / "noecho", echo=False))
    vector = encoder.encode(["Berlin ist die Hauptstadt"])[0]
    assert len(vector.en_ids) > 0 and len(vector.m_ids) == 0


def test_echo_weight_of_another_shape_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_of(tiny_checkpoint, tmp_path)
    state = torch.load(directory / "pytorch_model.bin", weights_only=True)
    state["echo.weight"] = torch.zeros(600, 32)
    torch.save(state, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"echo.weight has shape \[600, 32\].*\[1, 64\]"):
        MilcoEncoder.from_pretrained(directory)


@pytest.mark.parametrize(("remove", "message"), [
    ("config.json", "config.json is missing"),
    ("pytorch_model.bin", "holds no weights: expected model.safetensors or pytorch_model.bin"),
    ("tokenizer.json", "no multilingual tokenizer: expected tokenizer.json or sentencepiece.bpe.model"),
])
def test_missing_files_are_named(tiny_checkpoint: Path, tmp_path: Path, remove: str, message: str) -> None:
    directory = copy_of(tiny_checkpoint, tmp_path)
    (directory / remove).unlink()
    with pytest.raises(CheckpointError, match=message):
        MilcoEncoder.from_pretrained(directory)


def test_wrong_model_type_and_corrupt_weights(tiny_checkpoint: Path, tmp_path: Path) -> None:
    directory = copy_of(tiny_checkpoint, tmp_path)
    (directory / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="pytorch_model.bin could not be read"):
        MilcoEncoder.from_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="expected \"model_type\": \"milco\""):
        MilcoEncoder.from_pretrained(directory)


def test_bundled_english_vocabulary_is_used_without_en_vocab_txt(tmp_path: Path) -> None:
    directory = make_tiny_checkpoint(tmp_path / "c", en_vocab_size=30522)
    (directory / "en_vocab.txt").unlink()
    encoder = MilcoEncoder.from_pretrained(directory)
    assert len(encoder.vocabulary.en_pieces) == 30522
    assert encoder.vocabulary.en_pieces[1996] == "the"


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        MilcoEncoder.from_pretrained(tmp_path / "nowhere")


def test_unavailable_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="could not be fetched from the Hugging Face hub"):
        MilcoEncoder.from_pretrained("milco-os-tests/no-such-model")
