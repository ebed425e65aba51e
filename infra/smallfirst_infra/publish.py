"""Publishing the code package from inside `pulumi up`: a dynamic provider for Flex Consumption's one deploy.

Flex Consumption takes one zip at `https://<scm host>/api/publish`, authorised with an Entra token for Azure
Resource Manager (no publishing credentials), builds it remotely (`RemoteBuild=true`: pip installs
requirements.txt on Linux) and reports progress at `/api/deployments/<id>`. The resource is updated whenever
the package's SHA-256 changes, so editing any packaged file re-publishes on the next `pulumi up`.

The provider runs from the state in a separate process (see `_define_publisher`): every helper is a method,
every import is local to a method, and failures are plain RuntimeErrors whose message says what to do.
"""

from __future__ import annotations

from typing import Any, Callable

import pulumi
import pulumi.dynamic


def _define_publisher() -> type[pulumi.dynamic.ResourceProvider]:
    class OneDeployPublisher(pulumi.dynamic.ResourceProvider):
        """Uploads the zip, then polls the deployment until it succeeds or fails."""

        ARM_SCOPE = "https://management.azure.com/.default"
        # Kudu deployment status codes: 0 pending, 1 building, 2 deploying, 3 failed, 4 success.
        FAILED, SUCCEEDED = 3, 4

        def __init__(self, token_source: Callable[[], str] | None = None, poll_interval_s: float = 5.0,
                     deployment_timeout_s: float = 1800.0, retry_window_s: float = 600.0) -> None:
            self.token_source = token_source
            self.poll_interval_s = poll_interval_s
            self.deployment_timeout_s = deployment_timeout_s
            # New role assignments (the app's identity on its deployment container) take minutes to apply;
            # until then the endpoint answers 403, or 400 with BlobUploadFailedException.
            self.retry_window_s = retry_window_s

        def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
            deployment_id = self.publish(props)
            return pulumi.dynamic.CreateResult(id_=props["scm_url"], outs={**props, "deployment_id": deployment_id})

        def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
            # The package's path differs between machines; only its content and its destination matter.
            changed = [key for key in ("package_sha256", "scm_url") if olds.get(key) != news.get(key)]
            return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

        def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
            return pulumi.dynamic.UpdateResult(outs={**news, "deployment_id": self.publish(news)})

        def delete(self, _id: str, _props: dict[str, Any]) -> None:
            """Nothing to undo: the deployed code goes with the Function App."""

        def publish(self, props: dict[str, Any]) -> str:
            import hashlib
            import time

            package = open(props["package_path"], "rb").read()
            if hashlib.sha256(package).hexdigest() != props["package_sha256"]:
                raise RuntimeError(f"{props['package_path']} changed after the preview; run `pulumi up` again")
            scm_url = props["scm_url"].rstrip("/")
            headers = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/zip"}
            deadline = time.monotonic() + self.retry_window_s
            while True:
                status, body = self.request("POST", f"{scm_url}/api/publish?RemoteBuild=true&Deployer=pulumi",
                                            headers, package)
                if status in (200, 202):
                    break
                transient = status in (403, 409, 429) or status >= 500 or (
                    status == 400 and "BlobUploadFailed" in body)
                if not transient or time.monotonic() > deadline:
                    raise RuntimeError(f"POST {scm_url}/api/publish answered {status}: {body[:2000]}")
                time.sleep(self.poll_interval_s)
            deployment_id = body.strip().strip('"') or "latest"
            return self.wait_for(scm_url, deployment_id, headers)

        def wait_for(self, scm_url: str, deployment_id: str, headers: dict[str, str]) -> str:
            import json
            import time

            url = f"{scm_url}/api/deployments/{deployment_id}"
            deadline = time.monotonic() + self.deployment_timeout_s
            while time.monotonic() < deadline:
                status, body = self.request("GET", url, {"Authorization": headers["Authorization"]}, None)
                if status == 200:
                    deployment = json.loads(body)
                    if deployment.get("status") == self.SUCCEEDED:
                        return str(deployment.get("id") or deployment_id)
                    if deployment.get("status") == self.FAILED:
                        raise RuntimeError(
                            f"deployment {deployment_id} failed: {deployment.get('status_text') or body[:2000]}; "
                            f"the build log is at {url}/log")
                time.sleep(self.poll_interval_s)
            raise RuntimeError(f"deployment {deployment_id} did not finish in {self.deployment_timeout_s:.0f} s: see {url}")

        def token(self) -> str:
            if self.token_source is not None:
                return self.token_source()
            from azure.identity import DefaultAzureCredential

            # The identity running `pulumi up` (az login, or a pipeline's service principal).
            return DefaultAzureCredential().get_token(self.ARM_SCOPE).token

        @staticmethod
        def request(method: str, url: str, headers: dict[str, str], data: bytes | None) -> tuple[int, str]:
            import urllib.error
            import urllib.request

            try:
                with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=300) as r:
                    return r.status, r.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode("utf-8", "replace")
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                return 599, f"no answer: {error}"  # retried like a 5xx

    return OneDeployPublisher


# Pulumi pickles a dynamic provider (with dill) into the state and runs it in another process, where this
# package is not necessarily importable. dill pickles a class by value only when it cannot find it by name,
# as with a class defined inside a function: hence the factory.
OneDeployPublisher = _define_publisher()


def scm_url_for(default_host_name: str) -> str:
    """`app.azurewebsites.net` -> `https://app.scm.azurewebsites.net`; regional unique host names alike."""
    app, _, domain = default_host_name.partition(".")
    return f"https://{app}.scm.{domain}"


class CodePublish(pulumi.dynamic.Resource):
    """The code package, published to one Function App. Outputs: the deployment id and the package hash."""

    deployment_id: pulumi.Output[str]
    package_sha256: pulumi.Output[str]

    def __init__(self, name: str, *, scm_url: pulumi.Input[str], package_path: str, package_sha256: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(OneDeployPublisher(), name,
                         {"scm_url": scm_url, "package_path": package_path, "package_sha256": package_sha256,
                          "deployment_id": None}, opts)
