"""Loading a released MILCO checkpoint from one local directory, with no network access.

Layout: ``config.json`` (``model_type: milco``), ``model.safetensors`` or
``pytorch_model.bin`` (keys ``m_model.*``, ``projector.*``, ``mlm_head.predictions.*``,
``echo.*``, ``scale``), the multilingual tokenizer files, and optionally ``en_vocab.txt``.
The backbone architecture comes from ``config.json`` when it embeds one
(``backbone_config``), else it is inferred from the weights.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, XLMRobertaConfig
from transformers.utils import logging as transformers_logging

from milco_os.model.config import CONFIG_FILE, WEIGHT_FILES, CheckpointError, MilcoConfig
from milco_os.model.network import MilcoNetwork

EN_VOCAB_FILE = "en_vocab.txt"
TOKENIZER_MODEL_FILES = ("tokenizer.json", "sentencepiece.bpe.model")
BUNDLED_EN_VOCAB = "bert-base-uncased-vocab.txt"
ATTENTION_HEAD_SIZE = 64
BACKBONE_PREFIX = "m_model."
IGNORED_PREFIXES = ("m_model.pooler.", "en_lsr.")


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights (safetensors preferred), on the CPU."""
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # any unreadable file is reported the same way
            raise CheckpointError(f"{path} could not be read as {name.rsplit('.', 1)[1]} weights: {exc}") from exc
    raise CheckpointError(f"{directory} holds no weights: expected {' or '.join(WEIGHT_FILES)}.")


def infer_backbone_config(state: dict[str, torch.Tensor], source: Path) -> XLMRobertaConfig:
    """The XLM-R architecture implied by the backbone weights (attention head size 64)."""
    try:
        vocab_size, hidden = state[BACKBONE_PREFIX + "embeddings.word_embeddings.weight"].shape
        positions = state[BACKBONE_PREFIX + "embeddings.position_embeddings.weight"].shape[0]
        token_types = state[BACKBONE_PREFIX + "embeddings.token_type_embeddings.weight"].shape[0]
        intermediate = state[BACKBONE_PREFIX + "encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{source}: backbone weight {exc.args[0]} is missing.") from exc
    layer_pattern = re.compile(re.escape(BACKBONE_PREFIX) + r"encoder\.layer\.(\d+)\.")
    layers = 1 + max(int(match.group(1)) for key in state if (match := layer_pattern.match(key)))
    if hidden % ATTENTION_HEAD_SIZE:
        raise CheckpointError(f"{source}: backbone hidden size {hidden} is not a multiple of {ATTENTION_HEAD_SIZE}.")
    return backbone_config(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // ATTENTION_HEAD_SIZE, intermediate_size=intermediate,
        max_position_embeddings=positions, type_vocab_size=token_types,
    )


def backbone_config(**architecture: int) -> XLMRobertaConfig:
    """An XLM-R config with the released model's fixed settings (eps 1e-5, <pad>=1, exact GELU), its attention
    through PyTorch's fused scaled-dot-product kernels."""
    return XLMRobertaConfig(
        **architecture, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="sdpa",
    )


def released_weights(state: dict[str, torch.Tensor], config: MilcoConfig, source: Path) -> dict[str, torch.Tensor]:
    """The state dict in this package's module names: unused keys dropped, tied decoder bias resolved."""
    weights = {key: value for key, value in state.items() if not key.startswith(IGNORED_PREFIXES)}
    decoder_bias = weights.pop("mlm_head.predictions.decoder.bias", None)
    if "mlm_head.predictions.bias" not in weights and decoder_bias is not None:
        weights["mlm_head.predictions.bias"] = decoder_bias
    elif decoder_bias is not None and not torch.equal(decoder_bias, weights["mlm_head.predictions.bias"]):
        raise CheckpointError(f"{source}: mlm_head.predictions.decoder.bias differs from the tied "
                              "mlm_head.predictions.bias; the released format ties them.")
    echo = weights.get("echo.weight")
    if config.echo and echo is not None and tuple(echo.shape) != (1, config.m_hidden_size):
        raise CheckpointError(
            f"{source}: echo.weight has shape {list(echo.shape)}; the released LexEcho head is "
            f"[1, m_hidden_size] = [1, {config.m_hidden_size}]. Other echo forms are not supported."
        )
    if "scale" in weights:
        weights["scale"] = weights["scale"].reshape(())
    return weights


def build_network(directory: Path) -> tuple[MilcoNetwork, MilcoConfig]:
    """The MILCO network with the checkpoint's weights loaded, in eval mode on the CPU."""
    config = MilcoConfig.read(directory / CONFIG_FILE)
    state = read_state_dict(directory)
    source = next(directory / name for name in WEIGHT_FILES if (directory / name).is_file())
    embedded = config.raw.get("backbone_config")
    backbone = backbone_config(**embedded) if embedded else infer_backbone_config(state, source)
    has_echo = config.echo and "echo.weight" in state
    weights = released_weights(state, config, source)
    if not has_echo:
        for key in ("echo.weight", "echo.bias", "scale"):
            weights.pop(key, None)
    network = MilcoNetwork(backbone, config.en_hidden_size, config.en_vocab_size, echo=has_echo)
    expected = set(network.state_dict())
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the MILCO layout: missing {missing[:8] or 'nothing'}, "
            f"unexpected {unexpected[:8] or 'nothing'}."
        )
    for key, tensor in network.state_dict().items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: {key} has shape {list(weights[key].shape)}, "
                                  f"expected {list(tensor.shape)} from config.json and the backbone.")
    network.load_state_dict(weights, strict=True)
    return network.eval(), config


def load_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """The multilingual tokenizer stored beside the weights (never downloaded)."""
    if not any((directory / name).is_file() for name in TOKENIZER_MODEL_FILES):
        raise CheckpointError(
            f"{directory}: no multilingual tokenizer: expected {' or '.join(TOKENIZER_MODEL_FILES)} "
            "(with tokenizer_config.json) beside the weights."
        )
    # AutoTokenizer peeks at config.json, whose model_type "milco" it does not know; that notice is noise.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{directory}: no usable multilingual tokenizer (expected tokenizer.json and tokenizer_config.json, "
            f"or sentencepiece.bpe.model): {exc}"
        ) from exc
    finally:
        transformers_logging.set_verbosity(verbosity)


def en_vocabulary_path(directory: Path) -> Path:
    """``en_vocab.txt`` of the checkpoint, else the bundled bert-base-uncased vocabulary."""
    local = directory / EN_VOCAB_FILE
    if local.is_file():
        return local
    return Path(str(resources.files("milco_os.model").joinpath("data", BUNDLED_EN_VOCAB)))


def resolve_directory(name_or_path: str | Path) -> Path:
    """A local checkpoint directory, or a Hugging Face model id fetched through the standard cache."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise CheckpointError(f"{path} is a file; a MILCO checkpoint is a directory holding {CONFIG_FILE}.")
    if str(name_or_path).count("/") != 1 or str(name_or_path).startswith((".", "/", "~")):
        raise CheckpointError(f"{path} does not exist; give a checkpoint directory or a Hugging Face model id.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(name_or_path)))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise CheckpointError(
            f"'{name_or_path}' is not a local directory and could not be fetched from the Hugging Face hub: {exc}",
            hint="download the checkpoint once where the hub is reachable and pass its directory.",
        ) from exc
