"""`smallfirst review --app URL` against a deployed app's review routes, here a loopback HTTP server that answers as
functions/http_api.py does. Entra cannot run here: the token comes from a TokenCredential given in the test, and
the test checks what the command sends (Authorization, paths, bodies) and how it reads the app's refusals."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from azure.core.credentials import AccessToken
from typer.testing import CliRunner

from shared.cli import app, review_client
from shared.cli.review_client import ReviewApi, ReviewApiError
from shared.foundation.records import CorrectionRecord, ResultRecord
from shared.pipeline.review import PendingItem
from tests.azure_wire import AzureWireServer, Scripted

SCOPE = "api://11111111-2222-3333-4444-555555555555/.default"
TASK = "support_ticket"
runner = CliRunner()


class FixedTokenCredential:
    """A TokenCredential (azure-core's protocol) that hands out one token per scope and records what was asked."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-for-{' '.join(scopes)}", int(time.time()) + 3600)


def pending(item_id: str, source: str) -> dict:
    record = ResultRecord(id=item_id, task=TASK, status="needs_review", answer="billing")
    return PendingItem(source=source, source_sha256="0" * 64, review_blob=f"{source}.jsonl", text=f"text of {item_id}",
                       record=record).model_dump(mode="json")


def decided(item_id: str, source: str) -> dict:
    return CorrectionRecord(task=TASK, id=item_id, source=f"incoming/{source}", text=f"text of {item_id}",
                            decision="accept", final_answer="billing", draft_answer="billing",
                            by="Ana Reviewer (oid-ana)", at=datetime.now(timezone.utc)).model_dump(mode="json")


def forbidden() -> Scripted:
    return Scripted(403, {"type": "about:blank", "title": "Forbidden", "status": 403, "code": "forbidden",
                          "detail": "the caller does not hold the Reviewer app role"},
                    {"content-type": "application/problem+json"})


@pytest.fixture
def deployed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local.settings.json of the checkout's
    monkeypatch.delenv("SMALLFIRST_REVIEW_APP", raising=False)
    monkeypatch.delenv("SMALLFIRST_REVIEW_SCOPE", raising=False)
    monkeypatch.delenv("DataStorage", raising=False)  # the app is the only way in
    credential = FixedTokenCredential()
    monkeypatch.setattr(review_client, "user_credential", lambda: credential)
    with AzureWireServer() as server:
        yield server, credential


def review(server: AzureWireServer, answers: str):
    return runner.invoke(app, ["review", TASK, "--app", server.url, "--scope", SCOPE, "--by", "mallory"],
                         input=answers)


def test_review_with_app_lists_and_decides_through_the_routes_with_the_users_bearer_token(deployed):
    server, credential = deployed
    server.script = [Scripted(body={"items": [pending("batch/7", f"{TASK}/a.jsonl"), pending("2", f"{TASK}/b.txt")]}),
                     Scripted(body=decided("batch/7", f"{TASK}/a.jsonl"))]
    result = review(server, "a\nq\n")
    assert result.exit_code == 0, result.output
    listing, decision = server.requests
    assert (listing.method, listing.path) == ("GET", f"/api/review/{TASK}")
    assert (decision.method, decision.path) == ("POST", f"/api/review/{TASK}/batch/7")  # the catch-all id route
    assert decision.body == {"decision": "accept", "answer": None, "source": f"{TASK}/a.jsonl"}  # no `by`
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer token-for-{SCOPE}"}
    assert credential.scopes and set(credential.scopes) == {(SCOPE,)}
    assert "2 item(s) of support_ticket wait in review" in result.output
    assert "1 decision(s) recorded by Ana Reviewer (oid-ana)" in result.output  # the app's principal, not --by


def test_a_403_from_the_app_on_listing_is_one_line_and_a_non_zero_exit(deployed):
    server, _ = deployed
    server.script = [forbidden()]
    result = review(server, "")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "403 forbidden" in lines[0] and "Reviewer" in lines[0], result.output
    assert len(server.requests) == 1  # a refusal is not retried


def test_a_403_on_a_decision_ends_the_session_at_once_with_one_line(deployed):
    server, _ = deployed
    server.script = [Scripted(body={"items": [pending("1", f"{TASK}/a.jsonl"), pending("2", f"{TASK}/b.txt")]}),
                     forbidden()]
    result = review(server, "a\na\n")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"{server.url} answered 403 forbidden")
    assert [r.method for r in server.requests] == ["GET", "POST"]  # the second item was not tried


def test_a_decision_taken_already_is_not_recorded_and_the_session_goes_on(deployed):
    server, _ = deployed
    server.script = [Scripted(body={"items": [pending("1", f"{TASK}/a.jsonl"), pending("2", f"{TASK}/b.txt")]}),
                     Scripted(409, {"status": 409, "code": "conflict", "detail": "item '1' was decided already"}),
                     Scripted(body=decided("2", f"{TASK}/b.txt"))]
    result = review(server, "a\na\n")
    assert result.exit_code == 0, result.output
    assert "not recorded: item '1' was decided already" in result.output
    assert "1 decision(s) recorded by Ana Reviewer (oid-ana)" in result.output


def test_review_with_app_and_no_scope_is_a_usage_error_naming_the_stack_output(deployed):
    server, _ = deployed
    result = runner.invoke(app, ["review", TASK, "--app", server.url])
    assert result.exit_code == 2 and "review_token_scope" in result.output and not server.requests


@pytest.mark.parametrize("reply", [Scripted(body={"title": "Your Functions app is up"}),
                                   Scripted(body={"items": [{"id": "1"}]}), Scripted(body={"items": None})])
def test_a_listing_that_is_not_the_review_routes_reply_is_one_line_and_a_non_zero_exit(deployed, reply):
    server, _ = deployed
    server.script = [reply]
    result = review(server, "")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "answered 200 without a review queue's items" in lines[0], result.output


def test_a_decision_reply_that_is_not_a_correction_ends_the_session_with_one_line(deployed):
    server, _ = deployed
    server.script = [Scripted(body={"items": [pending("1", f"{TASK}/a.jsonl")]}), Scripted(body={"ok": True})]
    result = review(server, "a\n")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].endswith("answered 200 without the decision it recorded: is --app "
                                                           "the stack output function_app_url?")


@pytest.mark.parametrize("url", ["http://app.example.net", "ftp://app.example.net", "app.example.net"])
def test_a_token_is_never_sent_to_an_app_url_that_is_not_https(url):
    with pytest.raises(ReviewApiError, match="https://"):
        ReviewApi(url, FixedTokenCredential(), SCOPE)
