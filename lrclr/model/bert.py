"""A compact BERT encoder and WordPiece tokenizer for the default text towers, in plain torch.

Why this exists: start-up time. The app must be ready within 15 s on a 2-core machine. Building
all-MiniLM-L6-v2 through ``transformers.AutoModel`` spent 3-5 s only importing
``transformers.models.bert.modeling_bert`` (it pulls in transformers.modeling_utils,
torch.distributed.tensor, torch._dynamo, sympy and scipy.optimize), and ``transformers`` itself
plus ``AutoTokenizer`` about 1 s more. The default towers (``minilm-l6`` and ``tiny-bert``) only
need BERT's encoder and a WordPiece tokenizer, which torch, ``safetensors`` and ``tokenizers``
provide without any of that: importing lrclr.model.lrclr_model and loading the bundled model went from 8.9 s
to 3.2 s (median of 3 fresh processes each, run back to back on the 2-core machine), and what is
left is mostly importing torch. Arbitrary Hugging Face checkpoints (``hf-text``) still go through
transformers.

Parameter names are exactly those of ``transformers.BertModel``, so model.safetensors files and
training checkpoints written with the earlier transformers-based tower load unchanged, and the
outputs match it (tests/model/test_bert_tower.py compares both against transformers).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lrclr.errors import ModelLoadError

# What transformers assumes when tokenizer_config.json gives no model_max_length: no limit.
UNLIMITED_LENGTH = int(1e30)
# Older transformers versions saved these index buffers in the weights; newer ones do not.
LEGACY_BUFFER_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids")


@dataclass(frozen=True)
class BertConfig:
    """The architecture fields of a BERT config.json; defaults are transformers' BertConfig defaults,
    so a config.json that leaves a field out means the same here as there."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    hidden_act: str = "gelu"
    position_embedding_type: str = "absolute"
    pad_token_id: int | None = 0  # None: no [PAD] embedding row is held fixed
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        # Other activations and relative position embeddings have different maths (and, for the
        # latter, extra weights): refusing is better than silently computing something else.
        if self.hidden_act != "gelu":
            raise ModelLoadError(f"the compact BERT supports hidden_act 'gelu' only, not {self.hidden_act!r}")
        if self.position_embedding_type != "absolute":
            raise ModelLoadError(
                f"the compact BERT supports absolute position embeddings only, not {self.position_embedding_type!r}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ModelLoadError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor  # (B, L, H)
    pooler_output: torch.Tensor  # (B, H)


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        # padding_idx keeps the [PAD] row at its loaded value during training, as in BertModel.
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        # Positions are made here rather than kept as a buffer (as BertModel does), so the weights
        # file holds every tensor of the model: load_bert relies on that.
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        summed = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        summed = summed + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(summed))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape
        q, k, v = (self._split_heads(proj(hidden)) for proj in (self.query, self.key, self.value))
        # An additive mask in the activations' dtype (bf16 under autocast) rather than a boolean
        # one: a row with every key masked then averages instead of producing NaN.
        bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(~keep, torch.finfo(q.dtype).min)
        # SDPA's dropout_p drops attention probabilities, where BERT applies attention dropout.
        dropout = self.dropout_p if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        return context.transpose(1, 2).reshape(batch, length, width)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)


class BertResidualOutput(nn.Module):
    """Dense, dropout, residual add, LayerNorm: the tail of both the attention and the MLP block.
    (transformers calls these BertSelfOutput and BertOutput; the parameter names are the same.)"""

    def __init__(self, in_features: int, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)  # the attribute name is fixed by the checkpoints' keys
        self.output = BertResidualOutput(config.hidden_size, config)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, keep), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden))  # BERT's "gelu" is the exact (erf) form


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertResidualOutput(config.intermediate_size, config)

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, keep)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, keep)
        return hidden


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class CompactBert(nn.Module):
    """BERT's encoder with ``transformers.BertModel``'s parameter names and outputs."""

    def __init__(self, config: BertConfig, initialise: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        if initialise:  # False only when pretrained weights replace every parameter at once
            self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # BERT's initialisation (normal(0, initializer_range), zero biases and [PAD] row) rather than
        # torch's defaults, so randomly initialised towers (tiny-bert) train like BertModel's did.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> BertOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L): which keys each query may see
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), keep)
        # The pooler runs although the towers use only the token states: BertModel computes it too,
        # and DDP (training with nothing frozen) expects every parameter to receive a gradient.
        return BertOutput(hidden, self.pooler(hidden))


def load_bert(folder: str | Path, pretrained: bool = True) -> CompactBert:
    """The BERT in a checkpoint folder (config.json + model.safetensors).

    ``pretrained=False`` builds the architecture only, for when the weights come later (from an
    LRCLR model.safetensors).
    """
    folder = Path(folder)
    config = BertConfig.from_json(folder / "config.json")
    if not pretrained:
        return CompactBert(config)
    # Skipping BERT's random initialisation and handing the model the loaded tensors instead of
    # copying them saves about 0.7 s of start-up on two cores. (Building on the meta device would
    # skip torch's own initialisation too, but its normal_ imports sympy: 2-3 s.) Assigning works
    # because every tensor the model holds is in the weights file.
    model = CompactBert(config, initialise=False)
    model.load_state_dict(read_bert_weights(folder / "model.safetensors", set(model.state_dict())), assign=True)
    return model


def read_bert_weights(path: Path, expected: set[str]) -> dict[str, torch.Tensor]:
    """A BERT's weights from safetensors (never a pickle), checked against the expected names."""
    from safetensors.torch import load_file

    # float32 whatever the file stores: the model runs in float32 and lower precision is autocast's job.
    state = {k: v.float() for k, v in load_file(str(path)).items() if k not in LEGACY_BUFFER_KEYS}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"{path}: not the weights of a plain BERT encoder (missing {len(missing)}: {missing[:3]}, "
            f"unexpected {len(unexpected)}: {unexpected[:3]})"
        )
    return state


# ---- tokenizer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizedBatch:
    """The part of transformers' BatchEncoding that LRCLR uses: tensors by name, and word ids."""

    tensors: dict[str, torch.Tensor]
    encodings: list[Any]  # tokenizers.Encoding, one per text

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def keys(self):
        return self.tensors.keys()

    def word_ids(self, row: int = 0) -> list[int | None]:
        return self.encodings[row].word_ids


@dataclass(frozen=True)
class TokenizerSettings:
    """What transformers reads from tokenizer_config.json (falling back on tokenizer.json's own
    padding and truncation settings) and applies on every call."""

    model_max_length: int
    pad_token: str
    pad_id: int
    pad_type_id: int
    padding_side: str
    truncation_side: str


class WordPieceTokenizer:
    """A fast tokenizer from a folder's tokenizer.json, called like a transformers fast tokenizer.

    Gives the same ids, masks, offsets and word ids as ``AutoTokenizer.from_pretrained(folder)``
    for the BERT tokenizers LRCLR uses, without importing transformers.
    """

    is_fast = True  # character offsets are available: TextTower requires that

    def __init__(self, backend, settings: TokenizerSettings):
        self.backend = backend  # tokenizers.Tokenizer
        self.settings = settings
        self.model_max_length = settings.model_max_length
        # The backend's padding and truncation are state set before each call; sessions of the
        # app share one tokenizer, so setting them and encoding must not interleave.
        self._lock = threading.Lock()

    @classmethod
    def from_folder(cls, folder: str | Path) -> "WordPieceTokenizer":
        from tokenizers import Tokenizer

        folder = Path(folder)
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return cls(backend, _read_settings(folder, backend))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: str | list[str], padding: bool | str = False, truncation: bool = False,
                 max_length: int | None = None, return_offsets_mapping: bool = False,
                 return_overflowing_tokens: bool = False, return_tensors: str | None = "pt") -> TokenizedBatch:
        if return_tensors != "pt" or return_overflowing_tokens:
            raise ValueError("WordPieceTokenizer returns torch tensors without overflowing tokens only")
        texts = [texts] if isinstance(texts, str) else list(texts)
        with self._lock:
            self._configure(padding, truncation, max_length)
            encodings = self.backend.encode_batch(texts, add_special_tokens=True)
        return TokenizedBatch(_tensors(encodings, return_offsets_mapping), encodings)

    def _configure(self, padding: bool | str, truncation: bool, max_length: int | None) -> None:
        # Whatever tokenizer.json stores (MiniLM's pads every text to 128) is replaced per call,
        # as transformers does, so only the call's own arguments count.
        settings = self.settings
        limit = max_length if max_length is not None else settings.model_max_length
        if truncation and limit < UNLIMITED_LENGTH:
            self.backend.enable_truncation(
                limit, stride=0, strategy="longest_first", direction=settings.truncation_side
            )
        else:
            self.backend.no_truncation()
        if padding not in (True, False, "longest"):
            raise ValueError(f"WordPieceTokenizer pads to the longest text or not at all, not {padding!r}")
        if padding:
            self.backend.enable_padding(
                direction=settings.padding_side, pad_id=settings.pad_id,
                pad_type_id=settings.pad_type_id, pad_token=settings.pad_token,
            )
        else:
            self.backend.no_padding()


def _tensors(encodings: list[Any], with_offsets: bool) -> dict[str, torch.Tensor]:
    tensors = {
        "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
        "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
    }
    if with_offsets:
        tensors["offset_mapping"] = torch.tensor([e.offsets for e in encodings], dtype=torch.long)
    return tensors


def _read_settings(folder: Path, backend) -> TokenizerSettings:
    config = _read_json(folder / "tokenizer_config.json")
    special = _read_json(folder / "special_tokens_map.json")
    stored_padding = backend.padding or {}
    stored_truncation = backend.truncation or {}
    pad_token = _token_text(config.get("pad_token") or special.get("pad_token") or stored_padding.get("pad_token"))
    pad_id = backend.token_to_id(pad_token) if pad_token else None
    if pad_token is None or pad_id is None:  # pad_id is None whenever pad_token is
        raise ModelLoadError(f"{folder}: the tokenizer has no padding token in its vocabulary")
    return TokenizerSettings(
        model_max_length=int(config.get("model_max_length") or UNLIMITED_LENGTH),
        pad_token=pad_token,
        pad_id=pad_id,
        pad_type_id=int(config.get("pad_token_type_id", stored_padding.get("pad_type_id", 0))),
        padding_side=config.get("padding_side") or stored_padding.get("direction", "right"),
        truncation_side=config.get("truncation_side") or stored_truncation.get("direction", "right"),
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(token: str | dict[str, Any] | None) -> str | None:
    # Newer tokenizer configs write special tokens as {"content": "[PAD]", ...}.
    return token.get("content") if isinstance(token, dict) else token
