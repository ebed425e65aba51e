"""Azure OpenAI and Azure AI Inference tiers against a local server speaking the documented payloads."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from shared.core.config import Settings
from shared.errors import InvalidOutputError, OutputTruncatedError, TierError, TransientTierError
from shared.core.tiers.registry import build_tier
from tests.azure_wire import Scripted, chat_completion

LABEL_TOKENS = [('{"', -0.01), ("label", -0.01), ('":"', -0.02), ("bill", -0.1), ("ing", -0.05), ('"}', -0.03)]


def _tier(name: str, wire, **overrides):
    env = {f"SMALLFIRST_{name.upper()}_{k.upper()}": str(v) for k, v in overrides.items()}
    return build_tier(Settings.from_env(env).tiers[name])


def openai_tier(wire, **extra):
    return _tier("frontier", wire, backend="azure_openai", endpoint=wire.url, model="gpt-4o", api_key="sekret",
                 timeout_s=1, **extra)


def foundry_tier(wire, **extra):
    return _tier("small", wire, backend="foundry", endpoint=wire.url + "/models", model="Phi-4", api_key="sekret",
                 timeout_s=1, **extra)


def compatible_tier(wire, **extra):
    return _tier("small", wire, backend="openai_compatible", endpoint=wire.url + "/v1", model="qwen", api_key="sekret",
                 timeout_s=1, **extra)


def blocking(tier, task, text):
    return tier.answer(task, text)


def awaited(tier, task, text):
    """`answer` on the async path (batches), on a loop of its own whose client is closed before it ends."""
    async def run():
        try:
            return await tier.aanswer(task, text)
        finally:
            await tier.aclose_async_client()

    return asyncio.run(run())


BOTH_PATHS = pytest.mark.parametrize("answer", [blocking, awaited])


def test_azure_openai_request_and_logprob_confidence(wire, catalog):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    answer = openai_tier(wire).classify(catalog.get("support_ticket"), "charged twice")
    request = wire.requests[0]
    assert request.path == "/openai/deployments/gpt-4o/chat/completions"
    assert request.query["api-version"] == ["2024-10-21"]
    assert request.headers["api-key"] == "sekret"
    body = request.body
    assert body["logprobs"] is True and body["temperature"] == 0.0 and body["max_tokens"] == 512
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["label"]["enum"] == ["billing", "technical", "account", "other"]
    assert body["messages"][0]["role"] == "system" and body["messages"][-1] == {"role": "user", "content": "charged twice"}
    assert answer.value == "billing"
    assert answer.confidence == pytest.approx(math.exp(-0.02 - 0.1 - 0.05 - 0.03))
    assert (answer.tokens_in, answer.tokens_out, answer.confidence_method) == (42, 7, "token_logprob")


def test_azure_openai_extraction_field_confidence(wire, catalog):
    content = '{"company":"ACME","date":"1/2/2018","address":"1 Road","total":"9.00"}'
    tokens = [('{"company":"', -0.01), ("AC", -0.2), ("ME", -0.1), ('","date":"', -0.01), ("1/2/2018", -0.3),
              ('","address":"', -0.01), ("1 Road", -0.4), ('","total":"', -0.01), ("9.00", -0.05), ('"}', -0.02)]
    wire.script.append(Scripted(body=chat_completion(content, tokens=tokens)))
    answer = openai_tier(wire).extract(catalog.get("receipt"), "ACME receipt")
    assert answer.value == json.loads(content)
    assert answer.field_confidence["company"] == pytest.approx(math.exp(-0.01 - 0.2 - 0.1 - 0.01))
    assert answer.field_confidence["total"] == pytest.approx(math.exp(-0.01 - 0.05 - 0.02))
    assert answer.confidence == min(answer.field_confidence.values())
    schema = wire.requests[0].body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["company", "date", "address", "total"]


def test_foundry_request_shape_and_sample_agreement(wire, catalog):
    replies = ["billing", "billing", "technical", "billing", "nonsense"]
    wire.script += [Scripted(body=chat_completion(json.dumps({"label": r}), model="Phi-4")) for r in replies]
    answer = foundry_tier(wire).classify(catalog.get("support_ticket"), "charged twice")
    assert len(wire.requests) == 5
    request = wire.requests[0]
    assert request.path == "/models/chat/completions"
    assert request.query["api-version"] == ["2024-05-01-preview"]
    assert request.headers["api-key"] == "sekret"
    assert request.body["model"] == "Phi-4"
    assert request.body["temperature"] == pytest.approx(0.7)
    assert "response_format" not in request.body  # Phi-4 serverless: instructions only by default
    assert answer.value == "billing" and answer.confidence == pytest.approx(0.6)
    assert answer.confidence_method == "sample_agreement_k5"
    assert answer.tokens_in == 5 * 42


def test_foundry_json_schema_and_logprobs_pass_through(wire, catalog):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    tier = foundry_tier(wire, structured_output="json_schema", logprobs="true")
    answer = tier.classify(catalog.get("support_ticket"), "charged twice")
    request = wire.requests[0]
    assert request.headers["extra-parameters"] == "pass-through"
    assert request.body["logprobs"] is True
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["response_format"]["json_schema"]["name"] == "support_ticket"
    assert answer.confidence == pytest.approx(math.exp(-0.2))


@BOTH_PATHS
@pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier, compatible_tier])
def test_429_carries_retry_after(wire, catalog, make_tier, answer):
    wire.default = Scripted(429, {"error": {"code": "429", "message": "Rate limit"}}, {"Retry-After": "7"})
    with pytest.raises(TransientTierError) as err:
        answer(make_tier(wire, logprobs="true"), catalog.get("support_ticket"), "x")
    assert err.value.retry_after == 7.0
    assert len(wire.requests) == 1  # the SDKs' own retries are off: ours decide


@BOTH_PATHS
@pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier, compatible_tier])
def test_5xx_and_timeout_are_transient_4xx_is_not(wire, catalog, make_tier, answer):
    task = catalog.get("support_ticket")
    wire.script.append(Scripted(500, {"error": {"code": "InternalServerError", "message": "boom"}}))
    with pytest.raises(TransientTierError):
        answer(make_tier(wire, logprobs="true"), task, "x")
    wire.script.append(Scripted(200, chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS), delay_s=2.0))
    with pytest.raises(TransientTierError):
        answer(make_tier(wire, logprobs="true"), task, "x")
    wire.script.append(Scripted(401, {"error": {"code": "Unauthorized", "message": "bad key"}}))
    with pytest.raises(TierError) as err:
        answer(make_tier(wire, logprobs="true"), task, "x")
    assert not isinstance(err.value, TransientTierError) and "bad key" in str(err.value)


@BOTH_PATHS
@pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier, compatible_tier])
def test_malformed_bodies_are_errors_not_crashes(wire, catalog, make_tier, answer):
    task = catalog.get("support_ticket")
    for not_a_completion in ("this is not json", [1, 2], {"status": "ok"}):
        wire.script.append(Scripted(200, not_a_completion))
        with pytest.raises(TierError):
            answer(make_tier(wire, logprobs="true"), task, "x")
    wire.script.append(Scripted(200, chat_completion("sure! the label is billing", tokens=[("sure! the label is billing", -1.0)])))
    with pytest.raises(InvalidOutputError):
        answer(make_tier(wire, logprobs="true"), task, "x")


@BOTH_PATHS
@pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier])
def test_reply_cut_off_at_max_tokens_is_a_truncation_and_keeps_its_token_counts(wire, catalog, make_tier, answer):
    content = '{"company": "ACME Trading Sdn Bhd", "date": "01/02'
    wire.default = Scripted(body=chat_completion(content, tokens=[(content, -0.5)], completion_tokens=512,
                                                 finish_reason="length"))
    with pytest.raises(OutputTruncatedError) as err:
        answer(make_tier(wire, logprobs="true"), catalog.get("receipt"), "ACME receipt")
    assert (err.value.tokens_in, err.value.tokens_out) == (42, 512)


def test_cached_prompt_tokens_are_recorded_and_priced_at_the_cached_rate(wire, catalog):
    from shared.core.records import Item
    from shared.core.run_tier import run_tier

    body = chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS, prompt_tokens=1100, completion_tokens=6)
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 1024}
    wire.default = Scripted(body=body)
    attempt = run_tier(openai_tier(wire), catalog.get("support_ticket"), Item(id="c", text="charged twice"))
    assert (attempt.tokens_in, attempt.tokens_cached, attempt.tokens_out) == (1100, 1024, 6)
    # gpt-4o defaults: input 2.50, cached input 1.25, output 10.00 USD per 1M tokens
    assert attempt.cost_usd == pytest.approx((76 * 2.5 + 1024 * 1.25 + 6 * 10.0) / 1e6)


def test_two_items_send_byte_identical_prompts_up_to_the_item(wire, catalog):
    """The static part (instruction, labels, schema, examples) comes first and never varies, so a provider's
    prompt cache can serve it for every item; only the last message, the item, differs."""
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    tier = openai_tier(wire)
    for text in ("charged twice", "the app crashes on start"):
        tier.classify(catalog.get("support_ticket"), text)
    first, second = (request.body["messages"] for request in wire.requests)
    assert json.dumps(first[:-1]) == json.dumps(second[:-1]) and first[-1] != second[-1]
    assert first[0]["role"] == "system" and first[-1]["role"] == "user"


@pytest.mark.parametrize("make_tier, path, auth", [
    (openai_tier, "/openai/deployments/gpt-4o/chat/completions", ("api-key", "sekret")),
    (compatible_tier, "/v1/chat/completions", ("authorization", "Bearer sekret")),
], ids=["azure_openai", "openai_compatible"])
def test_the_async_path_sends_the_blocking_paths_request_to_the_same_url_with_the_same_key(wire, catalog, make_tier,
                                                                                          path, auth):
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    task = catalog.get("support_ticket")
    answers = [answer(make_tier(wire, logprobs="true"), task, "charged twice") for answer in (blocking, awaited)]
    sent_blocking, sent_awaited = wire.requests
    assert sent_awaited.path == sent_blocking.path == path
    assert sent_awaited.query == sent_blocking.query
    assert sent_awaited.body == sent_blocking.body
    assert sent_awaited.headers[auth[0]] == sent_blocking.headers[auth[0]] == auth[1]
    assert answers[0] == answers[1]


def test_keyless_azure_openai_on_the_async_path_sends_a_fresh_entra_token_each_request(wire, catalog, monkeypatch):
    """Entra ID cannot be reached here, so the token provider is replaced: what is checked is that each request
    asks it and carries its token as a bearer (azure-identity's provider caches the token itself)."""
    from shared.core.tiers import openai_tier as module

    issued = []

    async def provider() -> str:
        issued.append(f"token-{len(issued)}")
        return issued[-1]

    monkeypatch.setattr(module, "_token_provider", lambda closing: provider)
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    tier = _tier("frontier", wire, backend="azure_openai", endpoint=wire.url, model="gpt-4o", logprobs="true")
    task = catalog.get("support_ticket")

    async def two_items():
        try:
            return [await tier.aanswer(task, text) for text in ("charged twice", "refund please")]
        finally:
            await tier.aclose_async_client()

    asyncio.run(two_items())
    assert [r.headers["authorization"] for r in wire.requests] == ["Bearer token-0", "Bearer token-1"]
    assert all("api-key" not in r.headers for r in wire.requests)


@BOTH_PATHS
def test_a_compatible_servers_reply_without_the_fields_the_tier_never_reads_still_answers(wire, catalog, answer):
    """Some OpenAI-compatible servers leave out `id`, `created` or `object`: the SDK builds such replies leniently,
    and the async path does too."""
    body = chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)
    for unread in ("id", "created", "object"):
        del body[unread]
    wire.default = Scripted(body=body)
    reply = answer(compatible_tier(wire, logprobs="true"), catalog.get("support_ticket"), "charged twice")
    assert (reply.value, reply.tokens_in, reply.tokens_out) == ("billing", 42, 7)
    assert reply.confidence == pytest.approx(math.exp(-0.02 - 0.1 - 0.05 - 0.03))
