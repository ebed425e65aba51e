"""The preflight against recorded ARM responses, served from 127.0.0.1.

Recordings (tests/infra/arm_recordings/), from Azure/azure-rest-api-specs, specification/cognitiveservices/
resource-manager/Microsoft.CognitiveServices/stable/:
- ListLocationModels.json: 2025-09-01/examples/ListLocationModels.json, as published (the newest stable version
  whose example the spec index holds; 2026-07-01 keeps the operation and its response shape).
- ListUsages.json: 2026-07-01/examples/ListUsages.json, as published.
- *.edited_smallfirst_defaults.json: copies of those two with entries added in the same shape for this stack's
  default models (Phi-4, gpt-5.4-mini, text-embedding-3-small), their quota, and gpt-4o 2024-11-20 as retired.
Each failing case below edits a copy of these in the test.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.credentials import AccessToken

from smallfirst_infra.config import EnvironmentConfig, ModelDeployment
from smallfirst_infra.preflight import COGNITIVE_SERVICES_API_VERSION, main
from tests.infra.loopback import RecordingServer

RECORDINGS = Path(__file__).parent / "arm_recordings"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TODAY = date(2026, 12, 6)
MODELS_PATH = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/swedencentral/models"
USAGES_PATH = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/swedencentral/usages"


def recorded(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())["responses"]["200"]["body"]


class Token:
    def get_token(self, *scopes: str) -> AccessToken:
        assert scopes == ("https://management.azure.com/.default",)
        return AccessToken("arm-token", 2**31)


class FakeArm:
    """Answers Models_List and Usages_List with the given bodies; the models list split over two pages."""

    def __init__(self, models: dict, usages: dict) -> None:
        self.models, self.usages = models, usages
        self.url = ""  # the server's, once it listens (nextLink is absolute, as ARM's is)

    def __call__(self, request, _all):
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if request.headers.get("Authorization") != "Bearer arm-token":
            return 401, "application/json", b'{"error": {"code": "InvalidAuthenticationToken"}}'
        if url.path == MODELS_PATH and query.get("api-version") == [COGNITIVE_SERVICES_API_VERSION]:
            values = self.models["value"]
            half = len(values) // 2
            if query.get("page") == ["2"]:
                return 200, "application/json", json.dumps({"value": values[half:]}).encode()
            next_link = f"{self.url}{MODELS_PATH}?api-version={COGNITIVE_SERVICES_API_VERSION}&page=2"
            page = {"value": values[:half], "nextLink": next_link}
            return 200, "application/json", json.dumps(page).encode()
        if url.path == USAGES_PATH and query.get("api-version") == [COGNITIVE_SERVICES_API_VERSION]:
            return 200, "application/json", json.dumps(self.usages).encode()
        return 404, "application/json", b'{"error": {"code": "NotFound"}}'


def defaults_offered() -> tuple[dict, dict]:
    return (recorded("ListLocationModels.edited_smallfirst_defaults.json"),
            recorded("ListUsages.edited_smallfirst_defaults.json"))


def model_entry(models: dict, name: str, version: str) -> dict:
    return next(e["model"] for e in models["value"] if e["model"]["name"] == name and e["model"]["version"] == version)


def run(models: dict, usages: dict, capsys, *extra: str) -> tuple[int, list[str]]:
    arm = FakeArm(models, usages)
    with RecordingServer(arm) as server:
        arm.url = server.url
        status = main(["--location", "swedencentral", "--subscription", SUBSCRIPTION, *extra], credential=Token(),
                      arm_endpoint=server.url, today=TODAY)
    return status, capsys.readouterr().out.splitlines()


def stack_file(tmp_path: Path, **values: str) -> str:
    lines = ["config:", "  azure-native:location: swedencentral"]
    lines += [f"  smallfirst:{key}: {json.dumps(value) if isinstance(value, str) else value}"
              for key, value in values.items()]
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_defaults_offered_with_quota_pass_with_one_ok_line_each(capsys):
    status, lines = run(*defaults_offered(), capsys)
    assert status == 0
    assert lines == [
        "OK small: Phi-4 3 (the default version) GlobalStandard in swedencentral, capacity 1 of 1 free "
        "(AIServices.GlobalStandard.MaaS)",
        "OK frontier: gpt-5.4-mini 2026-03-17 (the default version) GlobalStandard in swedencentral, capacity 50 of "
        "80 free (OpenAI.GlobalStandard.gpt-5.4-mini)",
    ]


def test_model_missing_from_the_region_is_a_problem_and_exit_1(capsys):
    models, usages = defaults_offered()
    models["value"] = [e for e in models["value"] if e["model"]["name"] != "gpt-5.4-mini"]
    status, lines = run(models, usages, capsys)
    assert status == 1
    assert "PROBLEM frontier: OpenAI model gpt-5.4-mini is not offered in swedencentral" in lines[1]


def test_a_version_the_region_lacks_names_the_versions_it_offers(capsys, tmp_path):
    status, lines = run(*defaults_offered(), capsys, "--stack-config", stack_file(tmp_path, smallModelVersion="7"))
    assert status == 1
    assert lines[0].startswith("PROBLEM small: Phi-4 version 7 is not offered in swedencentral (offered: 3;")


def test_sku_not_offered_for_the_model_is_a_problem(capsys, tmp_path):
    status, lines = run(*defaults_offered(), capsys, "--stack-config",
                        stack_file(tmp_path, frontierModelSku="DataZoneStandard"))
    assert status == 1
    assert lines[1] == ("PROBLEM frontier: gpt-5.4-mini 2026-03-17 (the default version) is not offered as "
                        "DataZoneStandard in swedencentral (offered: GlobalStandard; set smallfirst:frontierModelSku)")


def test_capacity_over_the_free_quota_is_a_problem(capsys, tmp_path):
    status, lines = run(*defaults_offered(), capsys, "--stack-config",
                        stack_file(tmp_path, frontierModelCapacity=81))
    assert status == 1
    assert "asks capacity 81 but OpenAI.GlobalStandard.gpt-5.4-mini has 80 of 100 free" in lines[1]


def test_usage_absent_from_the_recorded_usages_is_no_quota(capsys):
    models, _ = defaults_offered()
    status, lines = run(models, recorded("ListUsages.json"), capsys)  # the spec's example: AccountCount only
    assert status == 1
    assert lines[0].startswith("PROBLEM small: no quota AIServices.GlobalStandard.MaaS in swedencentral")


def test_retired_frontier_of_the_old_defaults_is_reported(capsys, tmp_path):
    status, lines = run(*defaults_offered(), capsys, "--stack-config",
                        stack_file(tmp_path, frontierModelName="gpt-4o", frontierModelVersion="2024-11-20"))
    assert status == 1
    frontier = [line for line in lines if " frontier: " in line]
    assert "PROBLEM frontier: gpt-4o 2024-11-20 is past its retirement date 2026-10-01" in frontier[0]
    assert "PROBLEM frontier: gpt-4o 2024-11-20 is Deprecated: Azure takes no new deployments of it" in frontier


def test_version_retiring_within_sixty_days_is_a_problem(capsys):
    models, usages = defaults_offered()
    model_entry(models, "gpt-5.4-mini", "2026-03-17")["deprecation"] = {"inference": "2027-01-15T00:00:00Z"}
    status, lines = run(models, usages, capsys)
    assert status == 1
    assert "reaches its retirement date 2027-01-15 in 40 days" in lines[1]


def test_sku_deprecation_date_counts_like_a_retirement(capsys):
    models, usages = defaults_offered()
    model_entry(models, "Phi-4", "3")["skus"][0]["deprecationDate"] = "2026-11-30T00:00:00Z"
    status, lines = run(models, usages, capsys)
    assert status == 1 and "past its GlobalStandard deprecation date 2026-11-30" in lines[0]


def test_embeddings_are_checked_when_the_stack_deploys_them(capsys, tmp_path):
    status, lines = run(*defaults_offered(), capsys, "--stack-config",
                        stack_file(tmp_path, embeddingsDeployment="true"))
    assert status == 0
    assert lines[2].startswith("OK embeddings: text-embedding-3-small 1 (the default version) GlobalStandard")


def test_only_the_catalogue_of_the_account_kind_infra_creates_counts(capsys, tmp_path):
    """gpt-4o 2024-08-06 is recorded for kind OpenAI only; the stack creates an AIServices account."""
    status, lines = run(*defaults_offered(), capsys, "--stack-config",
                        stack_file(tmp_path, frontierModelName="gpt-4o", frontierModelVersion="2024-08-06"))
    assert status == 1 and "version 2024-08-06 is not offered in swedencentral (offered: 2024-11-20;" in lines[1]


def test_arm_refusal_is_one_clear_line_and_exit_2(capsys):
    class WrongToken(Token):
        def get_token(self, *scopes: str) -> AccessToken:
            return AccessToken("expired", 0)

    with RecordingServer(FakeArm(*defaults_offered())) as server:
        status = main(["--location", "swedencentral", "--subscription", SUBSCRIPTION], credential=WrongToken(),
                      arm_endpoint=server.url, today=TODAY)
    err = capsys.readouterr().err
    assert status == 2 and "answered 401" in err and "InvalidAuthenticationToken" in err


def test_bad_stack_config_is_a_clear_error_not_a_traceback(capsys, tmp_path):
    status = main(["--location", "swedencentral", "--subscription", SUBSCRIPTION, "--stack-config",
                   stack_file(tmp_path, frontierModelCapacity="lots")], credential=Token(), today=TODAY)
    assert status == 2
    assert "frontierModelCapacity: 'lots' is not a int" in capsys.readouterr().err


def test_stack_file_values_reach_the_config_as_pulumi_reads_them(tmp_path):
    path = Path(stack_file(tmp_path, frontierModelName="gpt-5.5", frontierModelCapacity=20, embeddingsDeployment="true"))
    config = EnvironmentConfig.from_stack_file(path)
    assert config.frontier_model == ModelDeployment("gpt-5.5", "OpenAI", "GlobalStandard", 20)
    assert config.embeddings_deployment is True and config.small_model.version is None


@pytest.mark.parametrize("content", ["not: [valid", "just a string\n", "config: 3\n"])
def test_unreadable_stack_file_is_refused_with_its_name(tmp_path, content):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match="Pulumi.x.yaml"):
        EnvironmentConfig.from_stack_file(path)


def test_models_list_follows_next_link_and_every_call_carries_the_token(capsys):
    arm = FakeArm(*defaults_offered())
    with RecordingServer(arm) as server:
        arm.url = server.url
        status = main(["--location", "SwedenCentral", "--subscription", SUBSCRIPTION], credential=Token(),
                      arm_endpoint=server.url, today=TODAY)
    assert status == 0
    paths = [urlsplit(r.path) for r in server.requests]
    assert [(p.path, parse_qs(p.query).get("page")) for p in paths] == [
        (MODELS_PATH, None), (MODELS_PATH, ["2"]), (USAGES_PATH, None)]
    assert {r.headers["Authorization"] for r in server.requests} == {"Bearer arm-token"}


def test_the_sample_stack_file_reads_as_the_program_defaults():
    sample = EnvironmentConfig.from_stack_file(Path(__file__).resolve().parents[2] / "infra" / "Pulumi.sample.yaml")
    assert sample == EnvironmentConfig()
