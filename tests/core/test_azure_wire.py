"""The endpoint tiers against a local server speaking the documented payloads: Azure OpenAI and Foundry Models on
the OpenAI v1 API, a Foundry managed-compute endpoint, the legacy azure-ai-inference backend, and an
OpenAI-compatible server; on the blocking and the async path."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from shared.core.config import Settings
from shared.errors import InvalidOutputError, OutputTruncatedError, TierError, TransientTierError
from shared.core.tiers.registry import build_tier
from tests.azure_wire import Scripted, chat_completion, model_info, models_list

LABEL_TOKENS = [('{"', -0.01), ("label", -0.01), ('":"', -0.02), ("bill", -0.1), ("ing", -0.05), ('"}', -0.03)]
MANAGED_COMPUTE = "http://phi4-ep.eastus2.inference.ml.azure.com"  # reached through the wire server as a proxy


def _tier(name: str, defaults: dict, overrides: dict):
    env = {f"SMALLFIRST_{name.upper()}_{k.upper()}": str(v) for k, v in {**defaults, **overrides}.items()}
    return build_tier(Settings.from_env(env).tiers[name])


def openai_tier(wire, **extra):
    """Azure OpenAI, configured with its resource endpoint."""
    return _tier("frontier", dict(backend="azure_openai", endpoint=wire.url, model="gpt-4o", api_key="sekret",
                                  timeout_s=1), extra)


def foundry_tier(wire, **extra):
    """A Foundry Models deployment, configured with its /openai/v1/ URL."""
    return _tier("small", dict(backend="foundry", endpoint=wire.url + "/openai/v1/", model="Phi-4", api_key="sekret",
                               timeout_s=1), extra)


@pytest.fixture
def through_proxy(wire, monkeypatch):
    """Requests for an Azure host name reach the wire server, as the SDK's transports honour HTTP_PROXY."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", wire.url)


def managed_compute_tier(wire, **extra):
    """A Foundry model on a managed-compute online endpoint, routed to one of its deployments (needs through_proxy)."""
    return _tier("small", dict(backend="foundry", endpoint=MANAGED_COMPUTE, model="Phi-4", deployment="phi-4-blue",
                               api_key="sekret", timeout_s=1), extra)


def legacy_tier(wire, **extra):
    """The legacy azure-ai-inference backend on a serverless endpoint."""
    return _tier("small", dict(backend="foundry_inference", endpoint=wire.url, model="Phi-4", api_key="sekret",
                               timeout_s=1), extra)


def compatible_tier(wire, **extra):
    return _tier("small", dict(backend="openai_compatible", endpoint=wire.url + "/v1", model="qwen",
                               api_key="sekret", timeout_s=1), extra)


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
EVERY_BACKEND = pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier, managed_compute_tier, legacy_tier,
                                                      compatible_tier])


@BOTH_PATHS
def test_azure_openai_sends_the_v1_url_without_api_version_and_reads_logprob_confidence(wire, catalog, answer):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    reply = answer(openai_tier(wire), catalog.get("support_ticket"), "charged twice")
    request = wire.requests[0]
    assert (request.method, request.path, request.query) == ("POST", "/openai/v1/chat/completions", {})
    assert request.headers["authorization"] == "Bearer sekret"
    body = request.body
    assert body["model"] == "gpt-4o"
    assert body["logprobs"] is True and body["top_logprobs"] == 0 and body["temperature"] == 0.0
    assert body["max_completion_tokens"] == 512 and "max_tokens" not in body  # reasoning models refuse max_tokens
    assert "reasoning_effort" not in body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["label"]["enum"] == ["billing", "technical", "account", "other"]
    assert body["messages"][0]["role"] == "system" and body["messages"][-1] == {"role": "user", "content": "charged twice"}
    assert reply.value == "billing"
    assert reply.confidence == pytest.approx(math.exp(-0.02 - 0.1 - 0.05 - 0.03))
    assert (reply.tokens_in, reply.tokens_out, reply.confidence_method) == (42, 7, "token_logprob")


@BOTH_PATHS
def test_a_reasoning_frontier_at_effort_none_keeps_temperature_and_logprobs(wire, catalog, answer):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    reply = answer(openai_tier(wire, model="gpt-5.4-mini", reasoning_effort="none"), catalog.get("support_ticket"),
                   "charged twice")
    body = wire.requests[0].body
    assert body["reasoning_effort"] == "none" and body["temperature"] == 0.0 and body["logprobs"] is True
    assert reply.confidence_method == "token_logprob"


@BOTH_PATHS
def test_a_reasoning_frontier_above_none_sends_no_temperature_and_scores_by_agreement(wire, catalog, answer):
    wire.script += [Scripted(body=chat_completion(json.dumps({"label": label}))) for label in
                    ["billing", "billing", "account"]]
    tier = openai_tier(wire, model="gpt-5.4-mini", reasoning_effort="low", logprobs="false", samples=3)
    reply = answer(tier, catalog.get("support_ticket"), "charged twice")
    for request in wire.requests:
        assert request.body["reasoning_effort"] == "low"
        assert "temperature" not in request.body and "logprobs" not in request.body
    assert (reply.value, reply.confidence, reply.confidence_method) == ("billing", pytest.approx(2 / 3),
                                                                       "sample_agreement_k3")


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


@BOTH_PATHS
def test_foundry_sends_the_v1_url_and_samples_for_agreement(wire, catalog, answer):
    replies = ["billing", "billing", "technical", "billing", "nonsense"]
    wire.script += [Scripted(body=chat_completion(json.dumps({"label": r}), model="Phi-4")) for r in replies]
    reply = answer(foundry_tier(wire), catalog.get("support_ticket"), "charged twice")
    assert len(wire.requests) == 5
    request = wire.requests[0]
    assert (request.path, request.query) == ("/openai/v1/chat/completions", {})
    assert request.headers["authorization"] == "Bearer sekret"
    assert request.body["model"] == "Phi-4"
    assert request.body["temperature"] == pytest.approx(0.7)
    assert "response_format" not in request.body and "logprobs" not in request.body  # Phi-4: instructions only
    assert reply.value == "billing" and reply.confidence == pytest.approx(0.6)
    assert reply.confidence_method == "sample_agreement_k5"
    assert reply.tokens_in == 5 * 42


@BOTH_PATHS
def test_foundry_sends_n_and_reads_one_reply_per_choice(wire, catalog, answer):
    body = chat_completion(json.dumps({"label": "billing"}), completion_tokens=15)
    body["choices"] = [{"index": i, "message": {"role": "assistant", "content": json.dumps({"label": label})},
                        "finish_reason": "stop"} for i, label in enumerate(["billing", "billing", "other"])]
    wire.default = Scripted(body=body)
    tier = foundry_tier(wire, samples=3, samples_per_request=3)
    reply = answer(tier, catalog.get("support_ticket"), "charged twice")
    assert len(wire.requests) == 1 and wire.requests[0].body["n"] == 3
    assert (reply.value, reply.tokens_in, reply.tokens_out) == ("billing", 42, 15)
    assert reply.confidence == pytest.approx(2 / 3)


@BOTH_PATHS
def test_managed_compute_goes_to_the_endpoints_root_routed_to_its_deployment(wire, catalog, through_proxy, answer):
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS, model="Phi-4"))
    tier = managed_compute_tier(wire, structured_output="json_schema", logprobs="true")
    reply = answer(tier, catalog.get("support_ticket"), "charged twice")
    request = wire.requests[0]
    assert request.headers["host"] == "phi4-ep.eastus2.inference.ml.azure.com"
    assert (request.path, request.query) == ("/chat/completions", {"api-version": ["2024-05-01-preview"]})
    assert request.headers["azureml-model-deployment"] == "phi-4-blue"
    assert request.headers["extra-parameters"] == "pass-through"  # logprobs and n are not in its API's schema
    assert request.headers["authorization"] == "Bearer sekret"
    assert request.body["logprobs"] is True and request.body["response_format"]["type"] == "json_schema"
    assert reply.confidence == pytest.approx(math.exp(-0.2))


def test_legacy_foundry_inference_request_shape_and_pass_through(wire, catalog):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    tier = legacy_tier(wire, structured_output="json_schema", logprobs="true")
    answer = tier.classify(catalog.get("support_ticket"), "charged twice")
    request = wire.requests[0]
    assert request.path == "/chat/completions" and request.query["api-version"] == ["2024-05-01-preview"]
    assert request.headers["api-key"] == "sekret"
    assert request.headers["extra-parameters"] == "pass-through"
    assert request.body["logprobs"] is True
    assert request.body["response_format"]["json_schema"]["name"] == "support_ticket"
    assert answer.confidence == pytest.approx(math.exp(-0.2))


@BOTH_PATHS
@EVERY_BACKEND
def test_429_carries_retry_after(wire, catalog, through_proxy, make_tier, answer):
    wire.default = Scripted(429, {"error": {"code": "429", "message": "Rate limit"}}, {"Retry-After": "7"})
    with pytest.raises(TransientTierError) as err:
        answer(make_tier(wire, logprobs="true"), catalog.get("support_ticket"), "x")
    assert err.value.retry_after == 7.0
    assert len(wire.requests) == 1  # the SDKs' own retries are off: ours decide


@BOTH_PATHS
@EVERY_BACKEND
def test_5xx_and_timeout_are_transient_4xx_is_not(wire, catalog, through_proxy, make_tier, answer):
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
@EVERY_BACKEND
def test_malformed_bodies_are_errors_not_crashes(wire, catalog, through_proxy, make_tier, answer):
    task = catalog.get("support_ticket")
    for not_a_completion in ("this is not json", [1, 2], {"status": "ok"}):
        wire.script.append(Scripted(200, not_a_completion))
        with pytest.raises(TierError):
            answer(make_tier(wire, logprobs="true"), task, "x")
    wire.script.append(Scripted(200, chat_completion("sure! the label is billing", tokens=[("sure! the label is billing", -1.0)])))
    with pytest.raises(InvalidOutputError):
        answer(make_tier(wire, logprobs="true"), task, "x")


@BOTH_PATHS
@pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier, legacy_tier])
def test_reply_cut_off_at_max_tokens_is_a_truncation_and_keeps_its_token_counts(wire, catalog, make_tier, answer):
    content = '{"company": "ACME Trading Sdn Bhd", "date": "01/02'
    wire.default = Scripted(body=chat_completion(content, tokens=[(content, -0.5)], completion_tokens=512,
                                                 finish_reason="length"))
    with pytest.raises(OutputTruncatedError) as err:
        answer(make_tier(wire, logprobs="true"), catalog.get("receipt"), "ACME receipt")
    assert (err.value.tokens_in, err.value.tokens_out) == (42, 512)


def test_cached_prompt_tokens_are_recorded_and_priced_at_the_cached_rate(wire, catalog):
    from shared.foundation.records import Item
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


@pytest.mark.parametrize("make_tier", [openai_tier, foundry_tier, managed_compute_tier, compatible_tier])
def test_the_async_path_sends_the_blocking_paths_request_to_the_same_url_with_the_same_headers(
        wire, catalog, through_proxy, make_tier):
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    task = catalog.get("support_ticket")
    answers = [answer(make_tier(wire, logprobs="true"), task, "charged twice") for answer in (blocking, awaited)]
    sent_blocking, sent_awaited = wire.requests
    assert (sent_awaited.path, sent_awaited.query) == (sent_blocking.path, sent_blocking.query)
    assert sent_awaited.body == sent_blocking.body
    for header in ("host", "authorization", "azureml-model-deployment", "extra-parameters", "api-key"):
        assert sent_awaited.headers.get(header) == sent_blocking.headers.get(header), header
    assert answers[0] == answers[1]


@pytest.mark.parametrize("make_tier, scope", [
    (openai_tier, "https://cognitiveservices.azure.com/.default"),
    (foundry_tier, "https://cognitiveservices.azure.com/.default"),
    (managed_compute_tier, "https://ml.azure.com/.default"),
], ids=["azure_openai", "foundry", "managed_compute"])
def test_keyless_tiers_send_a_fresh_entra_token_for_their_scope_on_both_paths(wire, catalog, through_proxy,
                                                                              monkeypatch, make_tier, scope):
    """Entra ID cannot be reached here, so the token provider is replaced: what is checked is the scope asked
    for, and that each request asks the provider and carries its token as a bearer (azure-identity's provider
    caches the token itself)."""
    from shared.core.tiers import openai_api as module

    issued, scopes = [], []

    def provider_for(asked_scope, closing):
        scopes.append(asked_scope)
        if closing is None:
            def provider() -> str:
                issued.append(f"token-{len(issued)}")
                return issued[-1]
            return provider

        async def aprovider() -> str:
            issued.append(f"token-{len(issued)}")
            return issued[-1]
        return aprovider

    monkeypatch.setattr(module, "_token_provider", provider_for)
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    tier = make_tier(wire, logprobs="true", api_key="")  # an empty setting is no setting: keyless
    task = catalog.get("support_ticket")

    async def two_items():
        try:
            return [await tier.aanswer(task, text) for text in ("charged twice", "refund please")]
        finally:
            await tier.aclose_async_client()

    tier.answer(task, "charged twice")
    asyncio.run(two_items())
    assert scopes == [scope, scope]
    assert [r.headers["authorization"] for r in wire.requests] == ["Bearer token-0", "Bearer token-1",
                                                                  "Bearer token-2"]
    assert all("api-key" not in r.headers for r in wire.requests)


@BOTH_PATHS
def test_a_compatible_servers_reply_without_the_fields_the_tier_never_reads_still_answers(wire, catalog, answer):
    """Some OpenAI-compatible servers leave out `id`, `created` or `object`: the SDK builds such replies leniently,
    on both paths."""
    body = chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)
    for unread in ("id", "created", "object"):
        del body[unread]
    wire.default = Scripted(body=body)
    reply = answer(compatible_tier(wire, logprobs="true"), catalog.get("support_ticket"), "charged twice")
    assert (reply.value, reply.tokens_in, reply.tokens_out) == ("billing", 42, 7)
    assert reply.confidence == pytest.approx(math.exp(-0.02 - 0.1 - 0.05 - 0.03))


@pytest.mark.parametrize("make_tier, path, query, reply", [
    (openai_tier, "/openai/v1/models", {}, models_list("gpt-4o", "gpt-4.1-mini")),
    (foundry_tier, "/openai/v1/models", {}, models_list("Phi-4")),
    (compatible_tier, "/v1/models", {}, models_list("qwen")),
    (managed_compute_tier, "/info", {"api-version": ["2024-05-01-preview"]}, model_info("Phi-4")),
    (legacy_tier, "/info", {"api-version": ["2024-05-01-preview"]}, model_info("Phi-4")),
], ids=["azure_openai", "foundry", "openai_compatible", "managed_compute", "foundry_inference"])
def test_probe_is_one_get_that_spends_no_tokens(wire, through_proxy, make_tier, path, query, reply):
    wire.default = Scripted(body=reply)
    description = make_tier(wire).probe()
    assert [(r.method, r.path, r.query) for r in wire.requests] == [("GET", path, query)]
    assert "reachable" in description
    if make_tier is managed_compute_tier:
        assert wire.requests[0].headers["azureml-model-deployment"] == "phi-4-blue"


@pytest.mark.parametrize("make_tier", [openai_tier, managed_compute_tier, legacy_tier])
def test_a_probe_that_fails_is_a_tier_error_naming_the_status(wire, through_proxy, make_tier):
    wire.default = Scripted(403, {"error": {"code": "PermissionDenied", "message": "no role on this resource"}})
    with pytest.raises(TierError, match="403|PermissionDenied|no role"):
        make_tier(wire).probe()


@pytest.fixture
def frontier_on_the_wire(wire, monkeypatch):
    """The local trained tier and an Azure OpenAI frontier on the wire server; the models list and completions
    answered."""
    for key, value in {"LOCAL_PROFILE": "trained", "FRONTIER_BACKEND": "azure_openai", "FRONTIER_ENDPOINT": wire.url,
                       "FRONTIER_MODEL": "gpt-4o", "FRONTIER_API_KEY": "sekret"}.items():
        monkeypatch.setenv(f"SMALLFIRST_{key}", value)
    wire.default = lambda request: Scripted(body=models_list("gpt-4o") if request.method == "GET" else
                                            chat_completion('{"ok": true}'))
    return wire


def test_health_route_probes_without_tokens_and_asks_for_a_completion_only_when_deep(frontier_on_the_wire):
    from function_app import app
    from functions import services
    from localdev.host import LocalHost

    services.reset()
    host = LocalHost(app, port=0)
    try:
        replies = {}
        for url in ("/api/health", "/api/health?deep=true"):
            response = host.handle_http("GET", url, {}, b"")
            assert response.status_code == 200, response.get_body()
            replies[url] = json.loads(response.get_body())
    finally:
        host.stop()
        services.reset()
    assert [(r.method, r.path) for r in frontier_on_the_wire.requests] == [
        ("GET", "/openai/v1/models"), ("POST", "/openai/v1/chat/completions")]
    assert replies["/api/health"]["check"] == "probe" and replies["/api/health?deep=true"]["check"] == "deep"
    assert "reachable" in replies["/api/health"]["tiers"]["frontier"]["detail"]
    assert "answered" in replies["/api/health?deep=true"]["tiers"]["frontier"]["detail"]
    assert replies["/api/health"]["tiers"]["trained"]["ok"] is True


def test_smallfirst_health_probes_by_default_deep_on_demand_and_marks_the_legacy_backend(frontier_on_the_wire,
                                                                                       monkeypatch):
    from typer.testing import CliRunner

    from shared.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    probed = CliRunner().invoke(app, ["health"], catch_exceptions=False)
    assert probed.exit_code == 0, probed.output
    assert [r.method for r in frontier_on_the_wire.requests] == ["GET"]
    deep = CliRunner().invoke(app, ["health", "--deep"], catch_exceptions=False)
    assert deep.exit_code == 0, deep.output
    assert [r.method for r in frontier_on_the_wire.requests] == ["GET", "POST"]
    assert "frontier: azure_openai reachable" in probed.output and "frontier: azure_openai gpt-4o answered" in deep.output

    for key, value in {"SMALL_BACKEND": "foundry_inference", "SMALL_ENDPOINT": frontier_on_the_wire.url,
                       "SMALL_API_KEY": "sekret"}.items():
        monkeypatch.setenv(f"SMALLFIRST_{key}", value)
    frontier_on_the_wire.default = lambda request: Scripted(body=model_info("Phi-4") if request.path == "/info" else
                                                            models_list("gpt-4o"))
    with_legacy = CliRunner().invoke(app, ["health"], catch_exceptions=False)
    assert with_legacy.exit_code == 0, with_legacy.output
    assert "small legacy (azure-ai-inference, retired 2026-08-26): foundry_inference (legacy) Phi-4" in with_legacy.output
