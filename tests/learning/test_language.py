"""Which texts a head's embedder cannot read (shared/learning/language.py), and what the trained tier does with them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.learning.embedders.use_multilingual import LANGUAGES as USE_M_LANGUAGES
from shared.learning.language import MIN_LETTERS, LanguageGate
from tests.conftest import REPO, dataset_rows

ENGLISH = frozenset({"en"})
SWEDISH = "Jag har blivit debiterad två gånger för samma månad. Kan ni återbetala det ena beloppet?"
CZECH = "Platbu za předplatné jste mi z karty strhli dvakrát. Prosím o vrácení peněz."
INDONESIAN = "Saya tidak bisa masuk ke akun saya, kode verifikasi tidak pernah sampai ke ponsel saya."


@pytest.fixture(scope="module")
def gate() -> LanguageGate:
    return LanguageGate()


def test_tickets_in_languages_use_m_was_not_trained_on_are_named(gate):
    assert gate.unreadable([SWEDISH, CZECH, INDONESIAN], USE_M_LANGUAGES) == ["sv", "cs", "id"]


def test_tickets_in_use_ms_own_languages_are_readable(gate):
    texts = ["Me han cobrado dos veces la suscripción anual este mes, ¿podéis devolverme uno?",
             "Nie mogę się zalogować, kod weryfikacyjny nie przychodzi na mój telefon.",
             "エクスポートボタンを押すとアプリがクラッシュします。最新版を使っています。",
             "Не могу войти в аккаунт: код подтверждения не приходит уже второй день."]
    assert gate.unreadable(texts, USE_M_LANGUAGES) == [None] * 4


def test_a_non_english_ticket_is_unreadable_for_an_english_embedder_but_english_is_not(gate):
    spanish = "Me han cobrado dos veces la suscripción anual este mes, ¿podéis devolverme uno?"
    english = "I was charged twice for the annual plan this month, can you refund one of them?"
    assert gate.unreadable([spanish, english], ENGLISH) == ["es", None]


def test_texts_with_fewer_letters_than_the_minimum_are_never_judged(gate):
    short = "Tack för hjälpen igår!"
    padded = "   " + short + " 1234567890 1234567890   "
    assert sum(c.isalpha() for c in padded) < MIN_LETTERS <= len(padded)
    assert gate.unreadable([short, padded], USE_M_LANGUAGES) == [None, None]


@pytest.mark.parametrize("text", [
    "!" * 40 + "?" * 20,
    "INV-2024-00123 INV-2024-00124 INV-2024-00125 INV-2024-00126 INV-2024-00127",
    "Order #123456789, SKU 99-8812-AX, qty 3, total $129.99, ref ABCD-EFGH-IJKL-MNOP",
    "https://example.com/support/tickets/8812/attachments/screenshot-of-the-error-page.png",
    "0123456789 " * 8,
    "🙂🙂🙂 👍👍👍 🔥🔥🔥 " * 6,
])
def test_a_text_in_no_language_is_never_judged_unreadable_even_by_an_english_embedder(gate, text):
    assert gate.unreadable([text], ENGLISH) == [None]


def test_an_embedder_that_reads_any_language_is_never_refused_and_nothing_is_loaded():
    fresh = LanguageGate()
    assert fresh.unreadable([SWEDISH, CZECH], None) == [None, None]
    assert fresh._identifier is None


@pytest.mark.parametrize("dataset", ["banking77", "clinc150"])
def test_no_english_benchmark_query_is_judged_unreadable_by_the_english_embedder(gate, dataset):
    texts = [row["text"] for row in dataset_rows(dataset)]
    assert len(texts) > 1000
    judged = [(text, language) for text, language in zip(texts, gate.unreadable(texts, ENGLISH)) if language]
    assert judged == []


def test_importing_the_gate_loads_no_language_model():
    code = ("import sys; import shared.learning.language as language; language.LanguageGate(); "
            "print('py3langid' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


# Through the trained tier: the shipped support_ticket head (USE-m) and the policy's verdict.

@pytest.fixture(scope="module")
def trained():
    from shared.core.config import Settings
    from shared.core.tiers.registry import TierRegistry

    return TierRegistry(Settings.from_env({})).get("trained")


@pytest.fixture(scope="module")
def support_ticket():
    from shared.foundation.tasks import TaskCatalog

    return TaskCatalog(REPO / "tasks").get("support_ticket")


def test_the_trained_tier_gives_a_ticket_its_embedder_cannot_read_confidence_0_and_says_why(trained, support_ticket):
    spanish = "Me han cobrado dos veces la suscripción anual este mes, ¿podéis devolverme uno?"
    czech, answered = trained.answer_many(support_ticket, [CZECH, spanish])
    assert czech.confidence == 0.0 and "'cs'" in czech.note and "universal-sentence-encoder" in czech.note
    assert answered.value == "billing" and answered.confidence > 0.5 and answered.note is None


def test_the_policy_judges_such_a_ticket_low_confidence_with_the_language_in_the_reason(trained, support_ticket):
    from shared.core.policy import AcceptancePolicy
    from shared.core.run_tier import run_tier
    from shared.foundation.records import Item

    attempt = run_tier(trained, support_ticket, Item(id="sv-1", text=SWEDISH))
    judged = AcceptancePolicy(support_ticket).judge(attempt, "small")
    assert judged.outcome == "low_confidence"
    assert judged.reason.startswith("confidence 0.000 < trained's threshold") and "'sv'" in judged.reason


def test_a_failing_language_check_leaves_the_heads_answers_as_they_are_and_logs_it(support_ticket, caplog):
    from shared.core.config import Settings
    from shared.learning.serving import TrainedHeads

    heads = TrainedHeads(Settings.from_env({}).tiers["trained"])
    served, _ = heads.load(support_ticket, heads.active_head(support_ticket))
    texts = [CZECH, "I was charged twice for the annual plan this month, can you refund one of them?"]
    gated = heads.labels(served, texts)
    heads.language_gate._identify = lambda: (_ for _ in ()).throw(OSError("model file unreadable"))
    ungated = heads.labels(served, texts)
    assert gated[0].confidence == 0.0 and ungated[0].confidence > 0.0 and ungated[0].note is None
    assert ungated[1] == gated[1]
    assert "the language check failed" in caplog.text


def test_the_trained_tiers_probe_loads_the_language_check():
    from shared.core.config import Settings
    from shared.core.tiers.registry import TierRegistry

    fresh = TierRegistry(Settings.from_env({})).get("trained")  # the module's tier has judged texts already
    assert fresh.heads.language_gate._identifier is None
    assert "the language check ready" in fresh.probe()
    assert fresh.heads.language_gate._identifier is not None
