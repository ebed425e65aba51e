"""The trained tier answering a batch in one embedder call: the real MiniLM and a shipped support_ticket head.

Embedder calls are counted on the real LocalMiniLM (its own embed_metered, wrapped), not on a stand-in model. The
task is support_ticket as an English-only task on its MiniLM head of 2026-11-23 (the task now declares languages,
so its current head is on USE-m).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.core.run_tier import run_tier, run_tier_batch
from shared.core.tiers.registry import TierRegistry
from shared.foundation.records import Item
from shared.learning.embedders.minilm import LocalMiniLM
from tests.azure_wire import Scripted, chat_completion
from tests.core.test_cascade import LABEL_TOKENS, frontier_env

REPO = Path(__file__).resolve().parents[2]
MINILM_HEAD = "20261123T204049.592929Z"
DEV = [json.loads(line) for line in (REPO / "tasks/data/support_ticket/dev.jsonl").read_text().splitlines() if line]
LONG = ("I was charged twice for the annual plan this month, once on the first and again on the third, and the "
        "second charge also added tax for a country I do not live in; I have attached both invoices, the bank "
        "statement and the confirmation emails, so please refund the duplicate and correct the billing address "
        "on the account before the next renewal, which is due in two weeks.")


@pytest.fixture
def embed_calls(monkeypatch) -> list[int]:
    """The size of each call of the real local embedder, in order."""
    calls: list[int] = []
    real = LocalMiniLM.embed_metered

    def counted(self, texts):
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(LocalMiniLM, "embed_metered", counted)
    return calls


def english_ticket(catalog, **update):
    return catalog.get("support_ticket").model_copy(
        update={"languages": [], "trained_head": MINILM_HEAD, **update})


@pytest.fixture(scope="module")
def trained():
    return TierRegistry(Settings.from_env({})).get("trained")


def test_a_batch_gives_exactly_the_labels_confidences_and_tokens_of_one_at_a_time(catalog, trained, embed_calls):
    task = english_ticket(catalog)
    texts = [row["text"] for row in DEV]
    batched = trained.answer_many(task, texts)
    assert embed_calls == [len(texts)]  # the whole batch in one call
    alone = [trained.classify(task, text) for text in texts]
    assert [a.value for a in batched] == [a.value for a in alone]
    assert max(abs(b.confidence - a.confidence) for b, a in zip(batched, alone)) <= 1e-6
    assert [b.tokens_in for b in batched] == [a.tokens_in for a in alone]
    assert len({a.tokens_in for a in alone}) > 5  # the texts really differ in length


def test_a_batch_of_very_different_lengths_comes_back_in_input_order(catalog, trained):
    task = english_ticket(catalog)
    texts = [LONG, "refund", "How do I reset my two-factor device?", LONG + " " + LONG, "The app crashes on export.",
             "hi"]
    encoded = LocalMiniLM(batch_size=2).encode(texts)
    assert [i for chunk in encoded for i in chunk.indices] != list(range(len(texts)))  # the embedder reorders them
    batched = trained.answer_many(task, texts)
    alone = [trained.classify(task, text) for text in texts]
    assert [(b.value, b.tokens_in) for b in batched] == [(a.value, a.tokens_in) for a in alone]
    assert [b.confidence for b in batched] == pytest.approx([a.confidence for a in alone], abs=1e-6)
    assert batched[0].value == "billing" and batched[0].tokens_in > 10 * batched[5].tokens_in


def test_the_cascade_asks_the_trained_tier_once_for_a_batch_and_judges_each_item_alone(wire, catalog, embed_calls):
    wire.default = lambda request: Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    task = english_ticket(catalog, tiers=["trained", "frontier"])
    items = [Item(id=row["id"], text=row["text"]) for row in DEV[:30]]
    cascade = Cascade(Settings.from_env(frontier_env(wire.url)), tasks=catalog)
    batched = cascade.run_batch(task, items)
    assert embed_calls == [len(items)]
    alone = [cascade.process(task, item) for item in items]
    assert [r.id for r in batched] == [item.id for item in items]
    assert [(r.status, r.tier, r.answer) for r in batched] == [(r.status, r.tier, r.answer) for r in alone]
    assert [r.attempts[0].confidence for r in batched] == pytest.approx(
        [r.attempts[0].confidence for r in alone], abs=1e-6)
    statuses = {r.status for r in batched}
    assert statuses == {"accepted", "escalated"}  # the threshold judged each: some stayed, some went on
    assert len(wire.requests) == 2 * sum(r.status == "escalated" for r in batched)  # once batched, once alone


def test_an_item_over_the_trained_budget_escalates_alone_and_the_rest_are_embedded_together(wire, catalog, embed_calls):
    wire.default = lambda request: Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    task = english_ticket(catalog, tiers=["trained", "frontier"])
    env = {**frontier_env(wire.url), "SMALLFIRST_TRAINED_MAX_INPUT_TOKENS": "40"}
    items = [Item(id="short-1", text="I was charged twice, please refund me"), Item(id="long", text=LONG),
             Item(id="short-2", text="I cannot sign in since I changed my password")]
    records = Cascade(Settings.from_env(env), tasks=catalog).run_batch(task, items)
    assert embed_calls == [2]  # the two within budget, together
    assert [(a.tier, a.outcome) for a in records[1].attempts] == [("trained", "too_large"), ("frontier", "accepted")]
    assert (records[0].tier, records[0].answer) == ("trained", "billing")
    assert (records[2].tier, records[2].answer) == ("trained", "account")
    assert [r.id for r in records] == ["short-1", "long", "short-2"]


def test_an_item_that_breaks_the_batch_call_fails_alone_and_the_others_are_answered(catalog, trained, embed_calls):
    """Text that is not Unicode (built past Item's validation) makes the tokenizer raise, failing the whole call."""
    task = english_ticket(catalog)
    items = [Item(id="a", text="I was charged twice, please refund me"),
             Item.model_construct(id="broken", text="refund \ud800 me"),
             Item(id="b", text="The export button does nothing and the page freezes")]
    attempts = run_tier_batch(trained, task, items)
    assert embed_calls[0] == 3 and sorted(embed_calls[1:]) == [1, 1, 1]  # the batch, then each alone
    assert attempts[1].outcome == "error" and "TypeError" in attempts[1].reason
    assert [attempts[0].answer, attempts[2].answer] == ["billing", "technical"]
    assert attempts[0].confidence == pytest.approx(run_tier(trained, task, items[0]).confidence, abs=1e-6)


def test_the_trained_tier_runs_its_head_on_one_blas_thread(catalog, trained, monkeypatch):
    """BLAS threads left spinning after a head's small products took a core from the embedder's next call."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    task = english_ticket(catalog)
    model = trained.head(task)[0].model
    real = type(model).predict_with_confidence
    seen: list[set[int]] = []

    def spied(self, X, texts=None):
        seen.append(blas_threads())
        return real(self, X, texts)

    monkeypatch.setattr(type(model), "predict_with_confidence", spied)
    before = blas_threads()
    trained.answer_many(task, [row["text"] for row in DEV[:8]])
    assert seen == [{1}] and blas_threads() == before  # one thread while the head runs, as many as before after it


def test_a_batch_embedded_by_a_deployment_shares_what_it_billed_among_its_items(tmp_path, catalog):
    """An Azure OpenAI deployment bills one count per request (the loopback server: a token per word): each item
    gets a share by length, the shares add up to the bill, and an item alone gets its own count."""
    from shared.core.tiers.trained import TrainedTier
    from tests.learning.test_azure_openai_embedder import EmbeddingsServer

    task = catalog.get("support_ticket").model_copy(update={"trained_head": None})  # zero-shot: any embedder
    texts = ["refund", "I was charged twice", "the export button does nothing and the whole page freezes again"]
    with EmbeddingsServer(dimension=1536) as server:
        tier = TrainedTier(Settings.from_env({"SMALLFIRST_TRAINED_HEADS_DIR": str(tmp_path),
                                              "SMALLFIRST_TRAINED_EMBEDDER": "azure_openai",
                                              "SMALLFIRST_TRAINED_ENDPOINT": server.endpoint,
                                              "SMALLFIRST_TRAINED_API_KEY": "test-key"}).tiers["trained"])
        batched = tier.answer_many(task, texts)
        assert [r["body"]["input"] for r in server.requests][-1] == texts  # the batch in one request
        alone = [tier.classify(task, text) for text in texts]
    assert [a.tokens_in for a in alone] == [1, 4, 11]
    assert sum(b.tokens_in for b in batched) == 16 and [b.tokens_in for b in batched] == [1, 3, 12]
    assert [b.value for b in batched] == [a.value for a in alone]


def test_overlapping_heads_on_two_threads_leave_blas_as_it_was_whatever_order_they_finish_in():
    """threadpoolctl restores what it saw on entry: two plain overlapping limits that end in the order they began
    leave BLAS at one thread for good. The first head in sets the limit and the last one out restores it."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from shared.learning.serving import OneBlasThread

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # two, whatever this machine's default, so a limit left
        one = OneBlasThread()                             # behind shows
        one.__enter__()  # thread A's head starts
        one.__enter__()  # thread B's head starts while A's runs
        assert blas_threads() == {1}
        one.__exit__(None, None, None)  # A's ends first: B's still runs on one thread
        assert blas_threads() == {1}
        one.__exit__(None, None, None)  # B's ends: BLAS as before
        assert blas_threads() == {2}
