"""The review queue of a deployed app, through its review routes (`smallfirst review --app URL`).

The routes want an Entra token for the app with the `Reviewer` app role (functions/http_api.py); the app records
the decision under the token's principal. The token comes from the user's own Azure sign-in (DefaultAzureCredential:
`az login` among others) for the scope the stack outputs as `review_token_scope` (`api://<client id>/.default`,
infra/README.md). Nothing here touches storage: a reviewer needs the role, not data-plane access.

`ReviewApi` answers as `shared/pipeline/review.py`'s ReviewQueue does (`pending`, `decide`), so the command's loop is
the same for both. A decision the app turns down for that item (not in review 404, decided already 409, an invalid
answer 400/422) is the error ReviewQueue raises; anything else (not signed in 401, no role 403, throttled,
unreachable) is a ReviewApiError, one line that ends the session.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlparse

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy, UserAgentPolicy
from azure.core.rest import HttpRequest, HttpResponse
from pydantic import ValidationError

from shared.errors import InputError, ReviewItemNotFound, SmallfirstError, WriteConflict
from shared.foundation.azure_http import is_loopback, json_object
from shared.foundation.records import CorrectionRecord, ReviewDecision
from shared.pipeline.review import PendingItem

USER_AGENT = "smallfirst-review"
REFUSAL_HINTS = {
    401: "sign in (az login) and pass the stack's review_token_scope as --scope",
    403: "your account does not hold the app's Reviewer role: ask for it in the stack's reviewers config",
}


class ReviewApiError(SmallfirstError):
    """The app refused the reviewer or could not be reached: one line saying which and what to do."""


class ReviewApi:
    def __init__(self, app_url: str, credential: TokenCredential, scope: str) -> None:
        parsed = urlparse(app_url)
        self._enforce_https = not is_loopback(app_url)
        if not parsed.hostname or parsed.scheme != "https" and (parsed.scheme != "http" or self._enforce_https):
            raise ReviewApiError(f"--app {app_url!r} is not the function app's https:// URL (the stack output "
                                 "function_app_url)")
        self.app_url = app_url.rstrip("/")
        self.scope = scope
        self._client = PipelineClient(self.app_url, policies=[
            UserAgentPolicy(USER_AGENT), RetryPolicy(), BearerTokenCredentialPolicy(credential, scope)])

    def pending(self, task: str) -> list[PendingItem]:
        """Every item waiting in the task's review queue, as the app lists them."""
        body = self._send("GET", f"/api/review/{quote(task, safe='')}")
        try:
            return [PendingItem.model_validate(item) for item in body["items"]]
        except (KeyError, TypeError, ValidationError):
            raise self._not_the_app("a review queue's items") from None

    def decide(self, task_name: str, item_id: str, decision: ReviewDecision, answer: Any = None, *, by: str,
               source: str) -> CorrectionRecord:
        """Send the decision on item `item_id` of input `source`. `by` is not sent: the app records the principal
        the token names, whoever the caller says it is."""
        body = self._send("POST", f"/api/review/{quote(task_name, safe='')}/{quote(item_id, safe='/')}",
                          {"decision": decision, "answer": answer, "source": source})
        try:
            return CorrectionRecord.model_validate(body)
        except ValidationError:
            raise self._not_the_app("the decision it recorded") from None

    def _not_the_app(self, what: str) -> ReviewApiError:
        """A 200 whose body is not what the review routes answer: another site, or another app, at that URL."""
        return ReviewApiError(f"{self.app_url} answered 200 without {what}: is --app the stack output "
                              "function_app_url?")

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = HttpRequest(method, f"{self.app_url}{path}", json=body)
        try:
            response = self._client.send_request(request, enforce_https=self._enforce_https)
        except ClientAuthenticationError as exc:
            first_line = (exc.message or str(exc)).strip().splitlines()[0]
            raise ReviewApiError(f"no token for {self.scope}: {first_line} (sign in with az login)") from None
        except AzureError as exc:
            raise ReviewApiError(f"{self.app_url} could not be reached: {exc.message or exc}") from None
        if response.status_code == 200:
            return json_object(response.text())
        raise _refusal(self.app_url, response)



def _refusal(app_url: str, response: HttpResponse) -> SmallfirstError:
    """The error for a reply that is not 200, from its problem+json (`code`, `detail`)."""
    problem = json_object(response.text())
    status = response.status_code
    code = str(problem.get("code") or response.reason or "error")
    detail = str(problem.get("detail") or response.text()[:200] or "").replace("\n", " ")
    if status == 404 and code == "not_in_review":
        return ReviewItemNotFound(detail)
    if status == 409:
        return WriteConflict(detail)
    if status in (400, 422):
        return InputError(str(problem.get("reason") or code), detail)
    hint = f"; {REFUSAL_HINTS[status]}" if status in REFUSAL_HINTS else ""
    return ReviewApiError(f"{app_url} answered {status} {code}: {detail}{hint}")


def user_credential() -> TokenCredential:
    """The user's own Azure sign-in (az login, azd, Visual Studio Code, environment variables), as smoke uses."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
