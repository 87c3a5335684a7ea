"""Tiny random MILCO checkpoints in exactly the released layout, for tests, demos and benchmarks.

The hub is not needed: the multilingual tokenizer is a small SentencePiece-style
Unigram model built from a built-in multilingual sample, the English vocabulary is a
sample of the bundled bert-base-uncased wordpieces, and the weights are random.
Retrieval quality with such a model is meaningless; the data path is the real one.
"""

from __future__ import annotations

import json
import math
import random
import unicodedata
from collections import Counter
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from milco_os.model.checkpoint import BUNDLED_EN_VOCAB, backbone_config
from milco_os.model.network import MilcoNetwork

MULTILINGUAL_SAMPLE = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Search engines rank documents by how well they match a query.",
    "Berlin is the capital of Germany, and Paris is the capital of France.",
    "Der schnelle braune Fuchs springt über den faulen Hund am Flussufer.",
    "Suchmaschinen ordnen Dokumente danach, wie gut sie zu einer Anfrage passen.",
    "Le renard brun rapide saute par-dessus le chien paresseux près de la rivière.",
    "Los motores de búsqueda ordenan documentos según su relevancia para la consulta.",
    "Быстрая коричневая лиса прыгает через ленивую собаку у реки.",
    "Поисковые системы ранжируют документы по соответствию запросу.",
    "東京は日本の首都であり、多くの人々が住んでいます。",
    "検索エンジンはクエリとの一致度で文書を順位付けします。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "搜索引擎根据文档与查询的匹配程度对文档进行排序。",
    "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "تقوم محركات البحث بترتيب المستندات حسب مطابقتها للاستعلام.",
    "नई दिल्ली भारत की राजधानी है और यह एक बड़ा शहर है।",
    "खोज इंजन दस्तावेज़ों को क्वेरी से मेल के अनुसार क्रमबद्ध करते हैं।",
    "서울은 대한민국의 수도이며 큰 도시입니다.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "Istanbul, Türkiye'nin en kalabalık şehridir.",
    "Hà Nội là thủ đô của Việt Nam.",
    "Emoji and symbols: 🚀 🔍 ✓ — «quotes», [brackets], 3.14, e-mail@example.org",
)
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>")
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_tokenizer(vocab_size: int) -> Tokenizer:
    """A deterministic Unigram tokenizer with XLM-R's special ids (<s>=0, <pad>=1, </s>=2) and template.

    Pieces: every character of the sample so nothing of it is unknown, then its most frequent
    words and word prefixes (scores: log relative frequencies), then private-use filler
    pieces up to ``vocab_size``.
    """
    counts: Counter[str] = Counter()
    for line in MULTILINGUAL_SAMPLE:
        for word in unicodedata.normalize("NFKC", line).split():
            piece = "▁" + word
            counts.update(piece[:end] for end in range(2, len(piece) + 1))
            counts.update(word)
    characters = sorted({piece for piece in counts if len(piece) == 1} | {"▁"})
    longer = sorted((p for p in counts if len(p) > 1), key=lambda p: (-counts[p] * len(p), p))
    room = max(0, vocab_size - len(SPECIAL_PIECES) - 1)
    pieces = (characters + longer)[:room]
    total = sum(counts.values())
    vocab = [(special, 0.0) for special in SPECIAL_PIECES]
    vocab += [(piece, math.log(max(counts[piece], 1) / total) - (1 if len(piece) == 1 else 0)) for piece in pieces]
    vocab += [(filler_piece(n), -100.0) for n in range(room - len(pieces))]
    vocab.append(("<mask>", 0.0))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tokenizer.add_special_tokens(list(SPECIAL_PIECES) + ["<mask>"])
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tokenizer


def filler_piece(n: int) -> str:
    """A piece of private-use characters, which no real text contains: pads a vocabulary to size."""
    digits = []
    while True:
        n, rest = divmod(n, 6400)
        digits.append(chr(0xE000 + rest))
        if n == 0:
            return "▁" + "".join(digits)


def english_pieces(count: int, rng: random.Random) -> list[str]:
    """BERT's special pieces plus a sample of real wordpieces (whole words, ## pieces, punctuation)."""
    bundled = Path(__file__).parent / "data" / BUNDLED_EN_VOCAB
    pieces = bundled.read_text(encoding="utf-8").splitlines()
    if count >= len(pieces):
        return pieces
    ordinary = [piece for piece in pieces[999:] if piece not in BERT_SPECIALS]
    return list(BERT_SPECIALS) + rng.sample(ordinary, count - len(BERT_SPECIALS))


def make_tiny_checkpoint(
    directory: str | Path,
    *,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    intermediate: int = 128,
    en_hidden: int = 32,
    en_vocab_size: int = 600,
    m_vocab_size: int = 800,
    max_positions: int = 130,
    echo: bool = True,
    safetensors: bool = False,
    en_terms_per_text: int | None = None,
) -> Path:
    """Write a random MILCO checkpoint in the released layout; returns its directory.

    ``max_positions`` counts XLM-R's two reserved positions (130 -> 128 tokens). With
    ``en_terms_per_text`` the English head's bias is shifted so that texts of about 200
    tokens get about that many English terms, as a trained model's sparse output does
    (random weights alone give nearly every piece a positive weight).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tokenizer = build_tokenizer(m_vocab_size)
    tokenizer.save(str(directory / "tokenizer.json"))
    m_vocab = tokenizer.get_vocab_size()
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>",
        "model_max_length": max_positions - 2,
    }, indent=2))
    (directory / "en_vocab.txt").write_text("\n".join(english_pieces(en_vocab_size, rng)) + "\n", encoding="utf-8")
    (directory / "config.json").write_text(json.dumps({
        "model_type": "milco", "architectures": ["MILCO"],
        "lsr_encoder_checkpoint": "naver/splade-v3", "multilingual_encoder_checkpoint": "BAAI/bge-m3-unsupervised",
        "model_variant": "bert", "en_vocab_size": en_vocab_size, "en_hidden_size": en_hidden,
        "m_vocab_size": m_vocab, "m_hidden_size": hidden, "echo": echo,
        "lambda_q": 0.001, "lambda_d": 0.0005, "sparse_reg": "flops",
    }, indent=2))
    torch.manual_seed(seed)
    backbone = backbone_config(
        vocab_size=m_vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
        intermediate_size=intermediate, max_position_embeddings=max_positions, type_vocab_size=1,
    )
    network = MilcoNetwork(backbone, en_hidden, en_vocab_size, echo=echo)
    with torch.no_grad():
        network.mlm_head.predictions.bias.normal_(0.0, 0.5)
        if network.scale is not None:
            network.scale.fill_(1.5)
            network.echo.bias.fill_(0.1)
    if en_terms_per_text:
        calibrate_english_terms(network, tokenizer, en_terms_per_text, rng)
    state = {key: value.clone().contiguous() for key, value in network.state_dict().items()}
    state["mlm_head.predictions.decoder.bias"] = state["mlm_head.predictions.bias"].clone()
    if echo:
        state["scale"] = state["scale"].reshape(1)
    # The released weights keep the backbone's unused pooler.
    state["m_model.pooler.dense.weight"] = torch.randn(hidden, hidden) * 0.02
    state["m_model.pooler.dense.bias"] = torch.zeros(hidden)
    if safetensors:
        from safetensors.torch import save_file

        save_file(state, str(directory / "model.safetensors"))
    else:
        torch.save(state, directory / "pytorch_model.bin")
    return directory


@torch.no_grad()
def calibrate_english_terms(network: MilcoNetwork, tokenizer: Tokenizer, terms_per_text: int, rng: random.Random,
                            texts: int = 8, tokens: int = 200) -> None:
    """Lower the English bias by the quantile of pooled logits that leaves ``terms_per_text`` of them positive
    (for texts of ``tokens`` tokens, or the model's limit)."""
    tokens = min(tokens, network.m_model.config.max_position_embeddings - 2)
    samples = [" ".join(rng.choice(MULTILINGUAL_SAMPLE) for _ in range(40)) for _ in range(texts)]
    ids = torch.tensor([encoding.ids[:tokens] for encoding in tokenizer.encode_batch(samples)])
    states = network.backbone_states(ids, torch.ones_like(ids))
    pooled = network.en_logits(network.en_features(states)).amax(dim=1)
    keep = min(1.0, terms_per_text / network.en_vocab_size)
    network.mlm_head.predictions.bias -= torch.quantile(pooled.flatten().float(), 1 - keep)
