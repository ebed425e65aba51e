"""The local int8 MiniLM embedder, for real: onnxruntime, the installed model and tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.embedders import Embedder
from shared.learning.embedders.minilm import DIMENSION, LocalMiniLM, ModelHashError
from tests.learning.conftest import loads_once_when_asked_at_once


def test_rows_are_unit_length_float32_and_the_interface_is_met(minilm):
    vectors = minilm.embed(["hello there", "a second, rather longer sentence about invoices"])
    assert isinstance(minilm, Embedder)
    assert vectors.dtype == np.float32 and vectors.shape == (2, DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_cosine_of_paraphrases_is_high_and_of_unrelated_texts_low(minilm):
    pin, forgot, weather = minilm.embed(["how do I reset my pin", "I forgot my PIN", "what's the weather tomorrow"])
    assert float(pin @ forgot) == pytest.approx(0.71, abs=0.03)
    assert float(pin @ weather) == pytest.approx(0.04, abs=0.05)


def test_batch_of_64_equals_one_at_a_time_to_1e_5(minilm):
    texts = [f"ticket {i}: " + "the export fails " * (i % 7) + ("with an error" if i % 2 else "") for i in range(64)]
    batched = minilm.embed(texts)
    single = np.vstack([minilm.embed([t]) for t in texts])
    assert np.abs(batched - single).max() < 1e-5


def test_rows_come_back_in_input_order_after_length_sorting():
    embedder = LocalMiniLM(batch_size=2)  # several chunks, so sorting really reorders across them
    texts = ["a very long sentence " * 6, "short", "medium length text here", "x", "another long one " * 4]
    together = embedder.embed(texts)
    batches = embedder.encode(texts)
    assert [i for b in batches for i in b.indices] != list(range(len(texts)))  # the model did see them reordered
    for row, text in zip(together, texts):
        assert np.abs(row - embedder.embed([text])[0]).max() < 1e-5


def test_inputs_are_padded_to_the_longest_item_of_a_batch_not_to_128(minilm):
    (batch,) = minilm.encode(["hi"])
    assert batch.input_ids.shape == (1, 3)  # [CLS] hi [SEP]
    (batch,) = minilm.encode(["hi", "one two three four five six"])
    assert batch.input_ids.shape[1] == 8 and batch.attention_mask.sum(axis=1).tolist() == [3, 8]


def test_long_inputs_are_truncated_at_128_tokens(minilm):
    (batch,) = minilm.encode(["word " * 500])
    assert batch.input_ids.shape == (1, 128)


def test_a_model_with_another_sha256_is_refused_at_load():
    with pytest.raises(ModelHashError, match="expected 0000"):
        LocalMiniLM(expected_sha256="0" * 64).embed(["anything"])


def test_a_different_model_file_is_refused_before_it_is_run(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(ModelHashError, match=str(fake)):
        LocalMiniLM(model_path=fake).embed(["anything"])


def test_construction_loads_nothing_the_first_embed_does(tmp_path):
    embedder = LocalMiniLM(model_path=tmp_path / "missing.onnx")  # would fail if it were read here
    with pytest.raises(FileNotFoundError):
        embedder.embed(["now it loads"])


def test_empty_input_gives_an_empty_matrix(minilm):
    assert minilm.embed([]).shape == (0, DIMENSION)


def test_metered_embedding_counts_the_tokens_read_after_truncation_and_gives_the_same_rows(minilm):
    texts = ["hi", "one two three four five six", "word " * 500]
    metered = minilm.embed_metered(texts)
    assert metered.tokens == 3 + 8 + 128  # [CLS] ... [SEP] each; the long text is cut at 128
    assert metered.tokens_each == [3, 8, 128] == minilm.token_counts(texts)  # each text's own, in input order
    assert np.array_equal(metered.vectors, minilm.embed(texts))
    assert minilm.embed_metered([]).tokens == 0


def test_threads_that_ask_at_once_load_the_model_once(monkeypatch):
    import onnxruntime

    embedder = LocalMiniLM()
    assert loads_once_when_asked_at_once(monkeypatch, onnxruntime, "InferenceSession", embedder) == ["first"]
    assert embedder.embed(["after both"]).shape == (1, DIMENSION)
