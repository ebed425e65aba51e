"""Writing a Functions host system key from inside `pulumi up`, retried until the host accepts it.

ARM relays a host key write (`PUT .../sites/<app>/host/default/systemkeys/<key>`) to the Functions host itself. On
Flex Consumption that host runs only once code is published, and even then it refuses writes for a while
(azure-functions-host#11379, terraform-provider-azurerm#29006). So the write comes after the publish step and is
retried with bounded exponential backoff; giving up is an error that names this step and what the host answered.

As in publish.py, the provider runs from the state in a separate process (see `_define_writer`): every helper is
a method and every import is local to a method.
"""

from __future__ import annotations

from typing import Any, Callable

import pulumi
import pulumi.dynamic

ARM_ENDPOINT = "https://management.azure.com"


def _define_writer() -> type[pulumi.dynamic.ResourceProvider]:
    class HostKeyWriter(pulumi.dynamic.ResourceProvider):
        """PUTs one host system key through ARM; retries until the host accepts it or the attempts run out."""

        ARM_SCOPE = "https://management.azure.com/.default"
        # WebApps_CreateOrUpdateHostSecret ("Web Apps - Create Or Update Host Secret",
        # https://learn.microsoft.com/rest/api/appservice/web-apps/create-or-update-host-secret). 2024-04-01 is the
        # version the earlier template used; the newest stable Microsoft.Web version, checked 2026-12-06 for the
        # smoke command's listKeys (shared/monitoring/smoke.py), is 2025-05-01: moving to it is not yet tested.
        API_VERSION = "2024-04-01"
        STEP = "writing the Functions host's {key} system key (after publishing the code)"

        def __init__(self, token_source: Callable[[], str] | None = None, arm_endpoint: str = ARM_ENDPOINT,
                     attempts: int = 10, first_delay_s: float = 5.0, max_delay_s: float = 60.0,
                     sleep: Callable[[float], None] | None = None) -> None:
            self.token_source = token_source
            self.arm_endpoint = arm_endpoint.rstrip("/")
            # 10 attempts, 5 s doubling to at most 60 s: about 6 minutes for a host that has just been published.
            self.attempts = attempts
            self.first_delay_s = first_delay_s
            self.max_delay_s = max_delay_s
            self.sleep = sleep

        def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
            self.write(props)
            return pulumi.dynamic.CreateResult(id_=self.key_path(props), outs=props)

        def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
            # A new package restarts the host, which keeps its keys in storage: only the key itself rewrites it.
            keys = ("subscription_id", "resource_group", "site_name", "key_name", "key_value")
            changed = [key for key in keys if olds.get(key) != news.get(key)]
            return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

        def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
            self.write(news)
            return pulumi.dynamic.UpdateResult(outs=news)

        def delete(self, _id: str, _props: dict[str, Any]) -> None:
            """Nothing to undo: the key goes with the Function App."""

        def key_path(self, props: dict[str, Any]) -> str:
            return (f"/subscriptions/{props['subscription_id']}/resourceGroups/{props['resource_group']}"
                    f"/providers/Microsoft.Web/sites/{props['site_name']}/host/default/systemkeys/{props['key_name']}")

        def write(self, props: dict[str, Any]) -> None:
            import json
            import time

            url = f"{self.arm_endpoint}{self.key_path(props)}?api-version={self.API_VERSION}"
            body = json.dumps({"properties": {"name": props["key_name"], "value": props["key_value"]}}).encode()
            sleep = self.sleep or time.sleep
            delay = self.first_delay_s
            answers: list[str] = []
            for attempt in range(1, self.attempts + 1):
                headers = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}
                status, text = self.request("PUT", url, headers, body)
                if 200 <= status < 300:
                    return
                answers.append(f"{status} {text[:300]}")
                if attempt < self.attempts:
                    sleep(delay)
                    delay = min(delay * 2, self.max_delay_s)
            raise RuntimeError(
                f"{self.STEP.format(key=props['key_name'])} failed: the host refused it {self.attempts} times "
                f"(last answer: {answers[-1]}). The code is published; run `pulumi up` again once the app is "
                f"running (check `https://{props['site_name']}.azurewebsites.net/admin/host/status` or the "
                "app's log stream)")

        def token(self) -> str:
            if self.token_source is not None:
                return self.token_source()
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential().get_token(self.ARM_SCOPE).token

        @staticmethod
        def request(method: str, url: str, headers: dict[str, str], data: bytes | None) -> tuple[int, str]:
            import urllib.error
            import urllib.request

            try:
                with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=120) as r:
                    return r.status, r.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode("utf-8", "replace")
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                return 599, f"no answer: {error}"

    return HostKeyWriter


# Defined inside a function so that dill pickles the class by value (see publish.py).
HostKeyWriter = _define_writer()


class HostSystemKey(pulumi.dynamic.Resource):
    """One system key of a Function App's host, with a value this program owns."""

    def __init__(self, name: str, *, subscription_id: pulumi.Input[str], resource_group: pulumi.Input[str],
                 site_name: pulumi.Input[str], key_name: str, key_value: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["key_value"]))
        super().__init__(HostKeyWriter(), name,
                         {"subscription_id": subscription_id, "resource_group": resource_group,
                          "site_name": site_name, "key_name": key_name,
                          "key_value": pulumi.Output.secret(key_value)}, opts)
