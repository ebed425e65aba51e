"""The openai_compatible tier against a real OpenAI-compatible server nobody here wrote: llama-cpp-python's
own (`python -m llama_cpp.server`, 0.3.36) serving the embedded tier's SmolLM2-135M GGUF on loopback.

What that server does with the request, read in its source (llama_cpp/server/app.py, types.py,
llama_chat_format.py) and seen here:
- `response_format`: it takes `text` and `json_object` (a JSON grammar; the tier puts the schema in the
  prompt) and refuses `json_schema` with a 500 whose message names the types it takes.
- `n`: dropped from the request ("ignored or currently unsupported"): every reply has one choice.
- `logprobs: true` alone gives no logprobs: its chat handler asks the model for `top_logprobs` of them, and
  with none given, for none. `top_logprobs: 0` gives each generated token's logprob.
- a prompt beyond its n_ctx: a 400 with code `context_length_exceeded`.
- a model name it does not serve is answered by the model it does serve (no error).

Each tier test runs on both paths: `answer` (the blocking SDK client) and `aanswer` on a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib

import jsonschema
import pytest

from shared.core.cascade import Cascade
from shared.core.backends import BACKENDS, Backend
from shared.core.config import Settings, TierConfig
from shared.foundation.records import Item
from shared.foundation.tasks import AnyTask, ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.core.tiers.chat import ChatTier
from shared.core.tiers.registry import build_tier
from shared.errors import InvalidOutputError, TierError
from tests.llama_server import MODEL_ALIAS, N_CTX, LlamaServer

pytestmark = pytest.mark.skipif(not BACKENDS[Backend.EMBEDDED].installed(), reason=(
    "the embedded extra (llama.cpp, SmolLM2) is not installed: no model to serve"))

# Few-shot examples keep a 135M model to the reply's form ({"label": ...}); the server enforces JSON, no more.
TICKET = ClassificationTask(
    name="ticket",
    instruction="Route the customer support ticket to the team that should handle it.",
    labels=[{"name": "billing", "description": "charges, refunds, invoices"},
            {"name": "technical", "description": "errors, crashes, bugs"},
            {"name": "account", "description": "sign-in, passwords"}],
    examples=[{"text": "My invoice shows the wrong amount", "label": "billing"},
              {"text": "The app crashes when I open settings", "label": "technical"},
              {"text": "I cannot sign in to my account", "label": "account"}],
    tiers=["small", "frontier"],
)
CONTACT = ExtractionTask(
    name="contact",
    instruction="Extract the sender's name and email address from the message.",
    schema={"type": "object", "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
            "required": ["name", "email"]},
    examples=[{"text": "Hi, this is Ann Lee (ann.lee@example.com), please call me.",
               "output": {"name": "Ann Lee", "email": "ann.lee@example.com"}}],
)
CRASH = "The export button crashes the app every time"
BOB = "Hello, Bob Stone here, you can reach me at bob@stone.org about the order."
PATHS = ["blocking", "async"]


@pytest.fixture(scope="module")
def server():
    with LlamaServer() as running:
        yield running


def served_tier(server, **settings) -> Tier:
    """The project's openai_compatible tier on the server; retries off, so a server error surfaces at once.
    Its samples are drawn cool: a 135M model's samples at the default 0.7 are often no valid answer, and these
    tests are about the wire, not the model."""
    return build_tier(TierConfig(
        name="small", role="small", backend="openai_compatible", endpoint=server.base_url, model=MODEL_ALIAS,
        max_attempts=1, max_output_tokens=64, sample_temperature=0.2, **settings))


def answer(tier: Tier, task: AnyTask, text: str, path: str) -> TierAnswer:
    """The tier's answer on the blocking path, or on the async path on a loop of its own (whose client is
    closed before the loop ends)."""
    if path == "blocking":
        return tier.answer(task, text)

    async def on_own_loop() -> TierAnswer:
        assert isinstance(tier, ChatTier)
        try:
            return await tier.aanswer(task, text)
        finally:
            await tier.aclose_async_client()

    return asyncio.run(on_own_loop())


@pytest.mark.parametrize("path", PATHS)
def test_classification_confidence_is_the_label_tokens_logprob(server, path):
    tier = served_tier(server, logprobs=True)
    result = answer(tier, TICKET, CRASH, path)
    assert result.value in TICKET.allowed_labels
    assert result.confidence_method == "token_logprob"
    assert 0.0 < result.confidence <= 1.0
    assert result.tokens_in > 0 and result.tokens_out > 0


@pytest.mark.parametrize("path", PATHS)
def test_extraction_in_json_object_mode_validates_against_the_schema(server, path):
    """json_object, the backend's default: the server's JSON grammar, the schema in the prompt; the tier
    validates each sample and agrees field by field."""
    tier = served_tier(server, samples=3)
    result = answer(tier, CONTACT, BOB, path)
    jsonschema.validate(result.value, CONTACT.json_schema)
    assert result.confidence_method == "sample_agreement_k3"
    assert set(result.field_confidence) == {"name", "email"}
    assert 0.0 < result.confidence <= 1.0


@pytest.mark.parametrize("path", PATHS)
def test_json_schema_response_format_is_refused_as_a_tier_error(server, path):
    tier = served_tier(server, structured_output="json_schema", samples=2)
    with pytest.raises(TierError, match="json_object"):  # its message names the types it takes
        answer(tier, CONTACT, BOB, path)


@pytest.mark.parametrize("samples_per_request", [1, 3])
@pytest.mark.parametrize("path", PATHS)
def test_sample_agreement_gets_all_k_samples_though_the_server_ignores_n(server, path, samples_per_request):
    """The server drops `n` and answers one choice a request, so a tier asking for 3 choices in one request
    gets one, draws again for the rest, and sends 3 requests, as a tier asking for one a request does."""
    tier = served_tier(server, samples=3, samples_per_request=samples_per_request)
    before = server.chat_completions_served()
    result = answer(tier, TICKET, CRASH, path)
    assert server.chat_completions_served() - before == 3
    assert result.value in TICKET.allowed_labels
    assert result.confidence_method == "sample_agreement_k3"
    assert result.confidence in (1 / 3, 2 / 3, 1.0)


@pytest.mark.parametrize("path", PATHS)
def test_field_agreement_gets_all_k_samples_though_the_server_ignores_n(server, path):
    tier = served_tier(server, samples=3, samples_per_request=3)
    before = server.chat_completions_served()
    with contextlib.suppress(InvalidOutputError):  # the one sample may be invalid: the requests are the point
        answer(tier, CONTACT, BOB, path)
    assert server.chat_completions_served() - before == 3


@pytest.fixture(scope="module")
def cascade(server, tmp_path_factory):
    """The served tier first, then an in-process frontier (the embedded tier) with room for a long item."""
    small = TierConfig(name="small", role="small", backend="openai_compatible", endpoint=server.base_url,
                       model=MODEL_ALIAS, max_output_tokens=64)
    frontier = TierConfig(name="frontier", role="frontier", backend="embedded", n_ctx=1024, n_threads=1)
    tiers = {"small": small, "frontier": frontier}
    return Cascade(Settings(tasks_dir=tmp_path_factory.mktemp("tasks"), tiers=tiers))


@pytest.mark.parametrize("path", PATHS)
def test_a_prompt_beyond_the_servers_context_escalates_to_the_next_tier(server, cascade, path):
    item = Item(id="long", text="The app crashes when I export. " * 60)  # about 480 tokens: over N_CTX
    assert TICKET.estimate_tokens(item.text) > N_CTX
    record = cascade.process(TICKET, item) if path == "blocking" else cascade.run_batch(TICKET, [item])[0]
    refused, answered = record.attempts
    assert (refused.tier, refused.outcome) == ("small", "error")
    assert "400" in refused.reason and "maximum context length" in refused.reason
    assert (answered.tier, answered.outcome) == ("frontier", "accepted")
    assert record.status == "escalated" and record.answer in TICKET.allowed_labels
