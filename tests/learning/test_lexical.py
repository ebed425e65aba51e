"""Word n-grams beside the embedding: the features, a head that reads them, and their artifact round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.learning.artifact import HeadExpectation, HeadMismatchError, load_head, save_head
from shared.learning.classifier import EmbeddingClassifier
from shared.learning.lexical import WordNgrams
from shared.learning.stores import LocalFolderStore
from shared.learning.training_data import LabelledExample, TrainingSet

LABELS = ["account", "billing", "other", "technical"]
REPO = Path(__file__).resolve().parents[2]


def test_vocabulary_keeps_words_and_pairs_seen_in_two_texts_and_rows_are_unit_length():
    ngrams = WordNgrams().fit(["card declined today", "card declined again", "new phone"])
    assert ngrams.vocabulary == ["card", "card declined", "declined"]
    rows = ngrams.transform(["my card was declined", "nothing known here"]).toarray()
    assert rows.shape == (2, 3)
    assert np.isclose(np.linalg.norm(rows[0]), 1.0) and rows[0, 1] == 0.0  # "card was declined": no pair
    assert not rows[1].any()


def test_too_little_text_gives_no_columns_instead_of_an_error():
    ngrams = WordNgrams().fit(["alpha", "beta"])
    assert ngrams.width == 0 and ngrams.transform(["alpha"]).shape == (1, 0)


def test_restored_ngrams_transform_exactly_as_the_fitted_ones():
    texts = ["reset my pin please", "reset my password", "my pin is blocked", "password blocked"]
    fitted = WordNgrams().fit(texts)
    restored = WordNgrams.restore(fitted.vocabulary, fitted.idf, fitted.ngram_range)
    assert np.array_equal(restored.transform(texts).toarray(), fitted.transform(texts).toarray())
    with pytest.raises(ValueError, match="idf"):
        WordNgrams.restore(fitted.vocabulary, fitted.idf[:-1], fitted.ngram_range)
    with pytest.raises(ValueError, match="n-gram range 2-1"):
        WordNgrams.restore(fitted.vocabulary, fitted.idf, (2, 1))


TRAINING_TEXTS = [
    "My card was declined at the shop", "card declined again!!", "Where is my new card?", "new card, new PIN",
    "Ich möchte meine Karte sperren", "Karte gesperrt – warum?", "Où est ma carte ?", "ma carte est bloquée",
    "top-up failed: top-up pending", "Top-up PENDING since Monday", "refund refund refund", "a I x",
    "naïve café résumé", "Naïve cafe resume", "email: bob@example.com / 42 £", "42 £ fee on 2024-01-02",
]
ODD_TEXTS = ["", "   ", "!!! ???", "a b c", "ÉCOLE école", "card card card declined", "Karte Karte gesperrt",
             "unseen words only here", "top-up_failed top-up-failed", "数字 卡 卡片 卡片", "x" * 300,
             "card\ndeclined\tagain", "café résumé naïve CAFÉ", "🙂 card 🙂 declined"]


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3)])
def test_numpy_tfidf_equals_scikit_learns_tfidfvectorizer_on_varied_texts(ngram_range):
    from sklearn.feature_extraction.text import TfidfVectorizer

    reference = TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=True, min_df=1).fit(TRAINING_TEXTS)
    ngrams = WordNgrams(ngram_range=ngram_range, min_df=1).fit(TRAINING_TEXTS)
    assert ngrams.vocabulary == reference.get_feature_names_out().tolist()
    texts = TRAINING_TEXTS + ODD_TEXTS
    ours, theirs = ngrams.transform(texts).toarray(), reference.transform(texts).toarray()
    assert np.abs(ours - theirs).max() <= 1e-12
    restored = WordNgrams.restore(ngrams.vocabulary, ngrams.idf, ngram_range)
    for (columns, values), row in zip(restored.tfidf_rows(texts), theirs):
        assert np.array_equal(columns, np.flatnonzero(row)) and np.abs(values - row[columns]).max(initial=0) <= 1e-12


def test_answering_with_ngrams_needs_neither_scikit_learn_nor_scipy():
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from shared.learning.lexical import WordNgrams\n"
            "ngrams = WordNgrams.restore(['card', 'card declined', 'declined'], np.ones(3), (1, 2))\n"
            "[(columns, values)] = ngrams.tfidf_rows(['my card declined'])\n"
            "assert columns.tolist() == [0, 1, 2] and abs(values @ values - 1) < 1e-12\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


def _word_decides(n: int = 120, words=("alpha", "beta", "gamma"), dimension: int = 16):
    """Labels given by one word, with embeddings that are pure noise: only the text can tell them apart."""
    rng = np.random.default_rng(0)
    labels = [words[i % len(words)] for i in range(n)]
    texts = [f"ticket {rng.integers(1000)} about {label} please" for label in labels]
    X = rng.normal(size=(n, dimension)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), labels, texts


def test_a_head_with_word_ngrams_learns_what_only_the_words_say():
    X, labels, texts = _word_decides()
    with_words = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, word_ngrams=(1, 2)).fit(X, labels, texts=texts)
    embedding_alone = EmbeddingClassifier(Cs=(10.0,), cv_folds=3).fit(X, labels)
    assert with_words.cv_metrics_.accuracy == 1.0  # cross-validated: the vocabulary of each fold's training part
    assert embedding_alone.cv_metrics_.accuracy < 0.6
    X_new, _, _ = _word_decides(6)
    assert with_words.predict(X_new, ["about gamma", "beta it is", "alpha", "gamma", "alpha", "beta"]) == [
        "gamma", "beta", "alpha", "gamma", "alpha", "beta"]


def test_cross_validation_keeps_the_embedding_alone_when_the_words_add_nothing():
    rng = np.random.default_rng(1)
    labels = [("north", "south")[i % 2] for i in range(80)]
    X = np.array([[1.0, 0.0] if label == "north" else [0.0, 1.0] for label in labels]) + rng.normal(0, 0.05, (80, 2))
    texts = [f"note {rng.integers(10)} {rng.integers(10)}" for _ in labels]  # words unrelated to the label
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, word_ngrams=(1, 2)).fit(X, labels, texts=texts)
    assert head.cv_metrics_.cv_accuracy_by_c == {"10": 1.0, "10 + words 1-2": 1.0}
    assert head.ngrams_ is None and head.predict(X[:2]) == labels[:2]  # a tie goes to the simpler head


def test_a_head_with_word_ngrams_needs_the_texts_to_fit_and_to_predict():
    X, labels, texts = _word_decides()
    with pytest.raises(ValueError, match="texts"):
        EmbeddingClassifier(Cs=(10.0,), cv_folds=3, word_ngrams=(1, 2)).fit(X, labels)
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, word_ngrams=(1, 2)).fit(X, labels, texts=texts)
    with pytest.raises(ValueError, match="texts"):
        head.predict(X)


def test_round_trip_of_a_head_with_word_ngrams_predicts_identically(tmp_path, embedder):
    X, labels, texts = _word_decides(160, LABELS, embedder.dimension)
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, word_ngrams=(1, 2)).fit(X, labels, texts=texts)
    store, summary = LocalFolderStore(tmp_path), TrainingSet([LabelledExample(text="x", label="billing",
                                                                              provenance="gold")]).summary()
    artifact = save_head(store, task="support_ticket", classifier=head, embedder=embedder, training_data=summary)
    assert artifact.word_ngrams == (1, 2) and artifact.ngram_features == head.ngrams_.width > 4
    loaded = load_head(store, "support_ticket", artifact.version, HeadExpectation.of(embedder, LABELS))
    assert np.array_equal(loaded.classifier.predict_proba(X, texts), head.predict_proba(X, texts))

    head_file = tmp_path / "support_ticket" / artifact.version / "head.json"
    head = json.loads(head_file.read_text())
    head["ngram_features"] -= 1  # a description that does not fit its weights
    head_file.write_text(json.dumps(head))
    with pytest.raises(HeadMismatchError, match="n-grams"):
        load_head(store, "support_ticket", artifact.version, HeadExpectation.of(embedder, LABELS))


def test_a_head_description_claiming_ngrams_its_weights_do_not_have_is_refused(tmp_path, embedder, support_head):
    store = LocalFolderStore(tmp_path)
    summary = TrainingSet([LabelledExample(text="x", label="billing", provenance="gold")]).summary()
    artifact = save_head(store, task="support_ticket", classifier=support_head, embedder=embedder,
                         training_data=summary)
    head_file = tmp_path / "support_ticket" / artifact.version / "head.json"
    head = json.loads(head_file.read_text())
    head["word_ngrams"], head["ngram_features"] = [1, 2], 10
    head_file.write_text(json.dumps(head))
    with pytest.raises(HeadMismatchError, match="no vocabulary"):
        load_head(store, "support_ticket", artifact.version, HeadExpectation.of(embedder, LABELS))
