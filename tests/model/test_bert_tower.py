"""The plain-torch BERT and tokenizer behind the default text towers, held to transformers.

``lrclr.model.bert`` exists so that loading the default model does not import transformers (seconds of
start-up). transformers stays installed for ``hf-text`` towers, so these tests compare against the
real ``BertModel`` and ``AutoTokenizer``: weights, outputs, dropout, gradients, tokens and spans.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoTokenizer

from lrclr.model import bert
from lrclr.model.config import TowerConfig
from lrclr.model.towers import _hf_text_tower, _minilm_folder, build_text_tower
from lrclr.errors import ModelLoadError
from lrclr.imaging.reading import load_image
from lrclr.model.lrclr_model import LRCLRModel
from lrclr.bundled import DEFAULT_MODEL_DIR
from tests.support.paths import REPO_ROOT, TEST_DATA

MINILM = Path(_minilm_folder())

REPORTS = [
    "Small right apical pneumothorax. XXXX normal heart size. No pleural effusion.",
    "Cardiomegaly.",
    "",
    "The lungs are clear bilaterally. Specifically, no evidence of focal consolidation, pneumothorax, "
    "or pleural effusion. Cardiomediastinal silhouette is unremarkable. Visualized osseous structures "
    "of the thorax are without acute abnormality.",
    "PA and lateral views: interval increase in the left basilar opacity (?atelectasis vs. pneumonia).",
]

# Reports a user may paste, each of which must tokenize exactly as transformers does.
TOKENIZER_CASES = {
    "ordinary": REPORTS[0],
    "empty": "",
    "100k-characters": ("Mild cardiomegaly. Small left pleural effusion. " * 2100)[:100_000],
    "emoji-only": "🫁🫀💔🩻 🫁🫁",
    "right-to-left": "שדות ריאות נקיים. انصباب جنبي أيسر. \u202eeffusion\u202c",
    "html-script": '<script>alert(1)</script><img src=x onerror="alert(2)"> Effusion <b>left</b>.',
    "control-and-binary": bytes(range(256)).decode("latin-1") + "\x00\x07\x1b[31mred\x7f \ufffd\ufeff",
    "deidentified": "XXXX-year-old XXXX. Comparison XXXX, XXXX. XXXX XXXX opacity.",
    "cjk": "右肺尖部气胸。心影大小正常。胸水なし。폐렴 없음.",
    "combining-accents": "Cafe\u0301 naïve re\u0301sume\u0301 Ångström pneumothorax\u0308",
    "whitespace": "  Left   effusion.\n\n\tRight\u00a0lung\u2003clear.\r\n \t ",
    "special-token-text": "[CLS] no [SEP] effusion [MASK] [PAD] [unk] [cls]",
    "long-word": "pneumo" * 40 + " thorax",
}


@pytest.fixture(scope="module")
def tokenizer() -> bert.WordPieceTokenizer:
    return bert.WordPieceTokenizer.from_folder(MINILM)


@pytest.fixture(scope="module")
def hf_tokenizer():
    return AutoTokenizer.from_pretrained(MINILM)


def _encode(tok, texts: list[str], max_length: int):
    return tok(texts, padding=True, truncation=True, max_length=max_length, return_offsets_mapping=True,
               return_overflowing_tokens=False, return_tensors="pt")


def _tiny_config() -> transformers.BertConfig:
    return transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def _compact_from(config: transformers.BertConfig) -> bert.CompactBert:
    fields = {f.name for f in dataclasses.fields(bert.BertConfig)}
    return bert.CompactBert(bert.BertConfig(**{k: v for k, v in config.to_dict().items() if k in fields}))


# ---- weights and architecture -------------------------------------------------------------------


@pytest.mark.parametrize("config", [lambda: transformers.BertConfig.from_pretrained(MINILM), _tiny_config],
                         ids=["minilm", "tiny"])
def test_state_dict_names_and_shapes_are_transformers_bert_models(config):
    hf_state = transformers.BertModel(config()).state_dict()
    state = _compact_from(config()).state_dict()
    assert set(state) == set(hf_state)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in hf_state.items()}


def test_tiny_bert_tower_holds_a_transformers_bert_state_dict():
    tower = build_text_tower(TowerConfig("tiny-bert", options={"hidden": 32, "layers": 2}))
    hf = transformers.BertModel(_tiny_config())
    tower.model.load_state_dict(hf.state_dict(), strict=True)  # old tiny-bert checkpoints load as they are
    assert tower.hidden_dim == 32 and tower.model.config.hidden_size == 32


@pytest.fixture(scope="module")
def minilm_pair():
    return bert.load_bert(MINILM).eval(), transformers.BertModel.from_pretrained(MINILM).eval()


def test_minilm_matches_transformers_on_a_padded_batch(minilm_pair, tokenizer):
    ours, hf = minilm_pair
    batch = _encode(tokenizer, REPORTS, 128)
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: padding is exercised
    with torch.no_grad():
        got = ours(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        want = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=0)


def test_dropout_matches_transformers_in_training_and_is_off_in_eval(minilm_pair, tokenizer):
    ours, hf = minilm_pair
    batch = _encode(tokenizer, REPORTS[:2], 64)
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    try:
        ours.train(), hf.train()
        with torch.no_grad():
            # Same seed, same dropout masks: only when dropout sits where BERT has it, in the same order.
            torch.manual_seed(7)
            got = ours(**inputs).last_hidden_state
            torch.manual_seed(7)
            want = hf(**inputs).last_hidden_state
            torch.manual_seed(8)
            other = ours(**inputs).last_hidden_state
    finally:
        ours.eval(), hf.eval()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert not torch.allclose(got, other, atol=1e-3)  # dropout is active in training
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).last_hidden_state, ours(**inputs).last_hidden_state, atol=0, rtol=0)


def test_gradients_match_transformers_and_reach_every_parameter(tokenizer):
    torch.manual_seed(0)
    config = _tiny_config()
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    hf = transformers.BertModel(config).train()
    ours = _compact_from(config).train()
    ours.load_state_dict(hf.state_dict())
    batch = _encode(tokenizer, REPORTS, 32)
    for model in (hf, ours):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        (out.last_hidden_state.pow(2).mean() + out.pooler_output.sum()).backward()
    hf_grads = dict(hf.named_parameters())
    for name, parameter in ours.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name  # DDP needs them all
        torch.testing.assert_close(parameter.grad, hf_grads[name].grad, atol=1e-5, rtol=1e-4)
    assert ours.embeddings.word_embeddings.weight.grad[0].abs().sum() == 0  # the [PAD] row stays fixed


def test_configs_it_cannot_compute_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="hidden_act 'gelu' only"):
        bert.BertConfig(hidden_act="relu")
    with pytest.raises(ModelLoadError, match="absolute position embeddings only"):
        bert.BertConfig(position_embedding_type="relative_key")
    (tmp_path / "config.json").write_text('{"hidden_act": "gelu_new", "hidden_size": 32}')
    with pytest.raises(ModelLoadError, match="gelu_new"):
        bert.load_bert(tmp_path)


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text((MINILM / "config.json").read_text())
    save_file({"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="not the weights of a plain BERT encoder"):
        bert.load_bert(tmp_path)


# ---- tokenizer ----------------------------------------------------------------------------------


def _assert_same_encoding(got, want, rows: int) -> None:
    for key in ("input_ids", "token_type_ids", "attention_mask", "offset_mapping"):
        assert torch.equal(got[key], want[key]), key
    for row in range(rows):
        assert got.word_ids(row) == want.word_ids(row), row


@pytest.mark.parametrize("name", sorted(TOKENIZER_CASES))
def test_tokenizer_matches_transformers(tokenizer, hf_tokenizer, name):
    text = TOKENIZER_CASES[name]
    for max_length in (512, 16):  # each call's limit replaces the previous one
        _assert_same_encoding(_encode(tokenizer, [text], max_length), _encode(hf_tokenizer, [text], max_length), 1)


def test_tokenizer_matches_transformers_on_a_padded_batch(tokenizer, hf_tokenizer):
    texts = list(TOKENIZER_CASES.values())
    got = _encode(tokenizer, texts, 512)
    _assert_same_encoding(got, _encode(hf_tokenizer, texts, 512), len(texts))
    assert got["input_ids"].shape[1] == 512 and set(got.keys()) == set(_encode(hf_tokenizer, texts, 512).keys())


def test_tokenizer_ignores_padding_and_truncation_stored_in_tokenizer_json():
    tokenizer = bert.WordPieceTokenizer.from_folder(MINILM)
    assert tokenizer.backend.padding["length"] == tokenizer.backend.truncation["max_length"] == 128
    short = _encode(tokenizer, ["effusion", "small left effusion"], 128)
    assert short["input_ids"].shape[1] == short["attention_mask"].sum(1).max() < 128  # padded to the longest
    long = _encode(tokenizer, [TOKENIZER_CASES["100k-characters"]], 512)
    assert long["input_ids"].shape[1] == 512


def test_tokenizer_attributes_match_transformers(tokenizer, hf_tokenizer):
    assert tokenizer.is_fast and hf_tokenizer.is_fast
    assert tokenizer.model_max_length == hf_tokenizer.model_max_length == 512
    assert tokenizer.vocab_size == hf_tokenizer.vocab_size and len(tokenizer) == len(hf_tokenizer)


def test_model_max_length_defaults_like_transformers(tmp_path):
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((MINILM / name).read_bytes())
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "BertTokenizer"}')
    ours, theirs = bert.WordPieceTokenizer.from_folder(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    assert ours.model_max_length == theirs.model_max_length
    text = [TOKENIZER_CASES["100k-characters"][:3000]]
    untruncated = dict(padding=True, truncation=True, return_offsets_mapping=True, return_tensors="pt")
    assert torch.equal(ours(text, **untruncated)["input_ids"], theirs(text, **untruncated)["input_ids"])


# ---- the bundled model --------------------------------------------------------------------------


def test_bundled_model_explains_as_with_the_transformers_tower():
    new = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)
    old = LRCLRModel.from_pretrained(DEFAULT_MODEL_DIR)
    old.text_tower = _hf_text_tower(str(MINILM)).eval()  # the tower as it was built before lrclr.model.bert
    assert not isinstance(old.text_tower.model, bert.CompactBert)
    case = new.encode_case(load_image(TEST_DATA / "siim_pneumothorax_example.dcm"))
    for report in (REPORTS[0], REPORTS[3], "", TOKENIZER_CASES["combining-accents"], "word " * 700):
        got, want = new.explain(case, report), old.explain(case, report)
        np.testing.assert_allclose([f.probability for f in got.findings], [f.probability for f in want.findings],
                                   atol=1e-5, rtol=0)
        assert [(w.text, w.start, w.end) for w in got.words] == [(w.text, w.start, w.end) for w in want.words]
        assert got.report_truncated == want.report_truncated
        for g, w in zip(got.words, want.words):
            np.testing.assert_allclose(g.region_attention, w.region_attention, atol=1e-5, rtol=0)
            np.testing.assert_allclose(g.patch_similarity, w.patch_similarity, atol=1e-5, rtol=0)


def test_loading_the_bundled_model_and_tokenizing_do_not_import_transformers():
    code = (
        "import sys\n"
        "from lrclr.model.lrclr_model import LRCLRModel\n"
        "from lrclr.model.config import TowerConfig\n"
        "from lrclr.model.towers import build_text_tower\n"
        f"model = LRCLRModel.from_pretrained({str(DEFAULT_MODEL_DIR)!r})\n"
        "model.tokenize(['Small right pneumothorax.'])\n"
        "build_text_tower(TowerConfig('tiny-bert')).tokenize(['effusion'], 16)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
