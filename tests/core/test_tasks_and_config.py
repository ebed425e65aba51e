from __future__ import annotations

import json

import pytest

from shared.core.backends import Backend, StructuredOutput
from shared.core.config import Settings
from shared.foundation.tasks import ClassificationTask, ExtractionTask, TaskCatalog, load_task_file
from shared.errors import ConfigError, TaskError, UnknownTaskError
from tests.conftest import DATASETS


def test_shipped_tasks_load(catalog):
    assert catalog.names() == ["banking77", "clinc150", "receipt", "support_ticket"]
    ticket = catalog.get("support_ticket")
    assert isinstance(ticket, ClassificationTask)
    assert ticket.allowed_labels == ["billing", "technical", "account", "other"]
    receipt = catalog.get("receipt")
    assert isinstance(receipt, ExtractionTask)
    assert receipt.required_fields == ["company", "date", "address", "total"]


def test_dataset_tasks_match_dataset_labels(catalog):
    for name in ("banking77", "clinc150"):
        labels = json.loads((DATASETS / name / "labels.json").read_text())
        task = catalog.get(name)
        assert [label.name for label in task.labels] == labels
        assert all(label.description for label in task.labels)
    clinc = catalog.get("clinc150")
    assert clinc.allow_none and clinc.none_label == "oos" and clinc.allowed_labels[-1] == "oos"


def test_task_error_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: classification\ninstruction: x\nthreshold: 2\nlabels:\n  - name: a\n  - name: b\n")
    with pytest.raises(TaskError) as err:
        load_task_file(path)
    assert str(path) in str(err.value) and "threshold" in str(err.value)


def test_task_rejects_duplicate_labels_and_bad_schema(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("kind: classification\ninstruction: x\nlabels: [{name: a}, {name: a}]\n")
    with pytest.raises(TaskError, match="unique"):
        load_task_file(dup)
    schema = tmp_path / "ext.yaml"
    schema.write_text("kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {type: nonsense}}}\n")
    with pytest.raises(TaskError, match="schema"):
        load_task_file(schema)


def test_labels_may_be_bare_names_or_a_mapping_of_name_to_description(tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("kind: classification\ninstruction: x\nlabels: [billing, other]\n")
    assert [(l.name, l.description) for l in load_task_file(names).labels] == [("billing", ""), ("other", "")]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("kind: classification\ninstruction: x\nlabels:\n  billing: charges, refunds\n  other:\n")
    assert [(l.name, l.description) for l in load_task_file(mapping).labels] == [
        ("billing", "charges, refunds"), ("other", "")]


@pytest.mark.parametrize("body, problem", [
    ("kind: extraction\ninstruction: x\nschema_file: 5\n", "schema_file must be a path"),
    ("kind: extraction\ninstruction: x\nschema_file: deep.json\n", "RecursionError"),
    ("kind: extraction\ninstruction: x\nschema_file: \"a\\0b\"\n", "null byte"),
    ("kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {$ref: 'http://example.com/a.json'}}}\n",
     "does not resolve within the schema"),
    ("kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {$ref: '#/$defs/gone'}}}\n",
     "'#/\\$defs/gone' does not resolve"),
    ("kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {$id: 'https://x.test/a', "
     "$ref: '#/$defs/gone'}}}\n", "'#/\\$defs/gone' does not resolve"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ncalibration: {x: [0.5, 0.1], y: [0.2, 0.9]}\n",
     "non-decreasing"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntiers: [trained, fronteir]\n", "unknown tiers"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntiers: [trained, trained]\n", "each tier may appear once"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntiers: [trained]\ntier_thresholds: {trained: .nan}\n",
     "tier_thresholds.trained: Input should be less than or equal to 1"),  # NaN fails every bound
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntiers: [trained]\ntier_thresholds: {trained: 2.0}\n",
     "tier_thresholds.trained: Input should be less than or equal to 1"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntiers: [trained]\ntier_thresholds: {trianed: 0.5}\n",
     "tier_thresholds for unknown tiers \\['trianed'\\]"),
    ("kind: classification\ninstruction: x\nlabels: [Billing, billing]\n", "unique, also ignoring case"),
    ("kind: classification\ninstruction: x\nlabels: [a, '  ']\n", "labels.1.name: String should match pattern"),
    ("kind: classification\ninstruction: x\nlabels: [a, ' b']\n", "labels.1.name: String should match pattern"),
    ("kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {type: string}}, required: [b]}\n",
     "required fields \\['b'\\] are not among the properties"),
    ("kind: extraction\ninstruction: x\nschema_file: s.json\nschema: {type: object, properties: {a: {}}}\n",
     "schema_file and schema are both given"),
    ("kind: extraction\ninstruction: x\nschema: {type: object, $defs: {x: {$ref: '#/$defs/x'}}, "
     "properties: {a: {$ref: '#/$defs/x'}}}\n", "'#/\\$defs/x' refers to itself"),
    ("kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {default: 2020-01-01}}}\n",
     "schema: not JSON data"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ncalibration: {x: [0.1, 0.5], y: [0.2, 1.5]}\n",
     "calibration.y.1: Input should be less than or equal to 1"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ncalibration: {x: [.nan, 0.5], y: [0.2, 0.9]}\n",
     "calibration.x.0: Input should be"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntiers: [trained]\ncalibration: {tier: smal, x: [0.5], "
     "y: [0.9]}\n", "calibration for unknown tier 'smal'"),
    ("kind: classification\ninstruction: '  '\nlabels: [a, b]\n", "instruction: String should match pattern"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\nnone_label: oos\n", "set but allow_none is not"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\ntrained_head: ../../x\n",
     "trained_head: String should match pattern"),
    ("kind: classification\ninstruction: x\nlabels: [a, b]\nconfidence_reference: {small: [-2]}\n",
     "confidence_reference.small.0: Input should be greater than or equal to 0"),
], ids=["schema-file-not-a-path", "schema-file-nested-too-deep", "schema-file-nul", "remote-ref", "dangling-ref",
        "dangling-ref-under-nested-id", "calibration-decreasing", "tier-typo", "tier-twice", "tier-threshold-nan",
        "tier-threshold-over-one", "tier-threshold-of-an-unknown-tier", "labels-differing-in-case", "blank-label",
        "label-with-space", "required-not-a-property", "schema-twice", "ref-to-itself", "schema-not-json",
        "calibration-over-one", "calibration-nan", "calibration-of-an-unknown-tier", "blank-instruction", "none-label-without-allow-none", "trained-head-not-a-version",
        "negative-share"])
def test_a_task_file_that_would_fail_later_is_a_task_error_when_loaded(tmp_path, body, problem):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(TaskError, match=problem):
        load_task_file(path)


def test_a_schema_whose_refs_resolve_within_it_loads_and_validates_through_them(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(json.dumps({"kind": "extraction", "instruction": "x", "schema": {
        "type": "object", "$defs": {"money": {"type": "string", "pattern": "^[0-9.]+$"}},
        "properties": {"total": {"$ref": "#/$defs/money"}, "note": {"type": "string", "default": {"$ref": "nope"}}},
        "required": ["total"]}}))
    task = load_task_file(path)
    assert task.validation_errors({"total": "12.50"}) == []
    assert task.validation_errors({"total": "twelve"}) != []


def test_refs_resolve_against_the_nearest_id_as_jsonschema_resolves_them(tmp_path):
    path = tmp_path / "ids.yaml"
    path.write_text(json.dumps({"kind": "extraction", "instruction": "x", "schema": {
        "$id": "https://x.test/receipt", "type": "object",
        "$defs": {"money": {"$id": "money.json", "type": "string", "pattern": "^[0-9.]+$"}},
        "properties": {"total": {"$ref": "money.json"},  # relative to the root's $id
                       "tax": {"$id": "https://x.test/tax", "$defs": {"rate": {"type": "number"}},
                               "$ref": "#/$defs/rate"}}}}))  # within the nested resource
    task = load_task_file(path)
    assert task.validation_errors({"total": "12.50", "tax": 0.2}) == []
    assert len(task.validation_errors({"total": "twelve", "tax": "high"})) == 2


def test_a_tasks_folder_that_is_missing_or_not_a_folder_is_a_task_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("")
    for folder, problem in ((tmp_path / "missing", "No such file"), (tmp_path / "file", "Not a directory")):
        with pytest.raises(TaskError, match=f"tasks folder {folder}: {problem}"):
            TaskCatalog(folder).get("support_ticket")


def test_files_that_cannot_be_tasks_are_not_offered_as_known_tasks(tmp_path):
    (tmp_path / "routing.yaml").write_text("kind: classification\ninstruction: x\nlabels: [billing, other]\n")
    (tmp_path / "my task.yaml").write_text("kind: classification\ninstruction: x\nlabels: [billing, other]\n")
    (tmp_path / "folder.yaml").mkdir()
    catalog = TaskCatalog(tmp_path)
    assert catalog.names() == ["routing"]
    with pytest.raises(UnknownTaskError) as err:
        catalog.get("my task")
    assert err.value.known == ["routing"]


def test_unknown_task_and_path_traversal_are_unknown_task_errors_naming_the_known_tasks(catalog):
    for name in ("nope", "../tasks/support_ticket", "support_ticket/../x"):
        with pytest.raises(UnknownTaskError) as err:
            catalog.get(name)
        assert "support_ticket" in err.value.known and name in str(err.value)


def test_extraction_validation_errors(catalog):
    receipt = catalog.get("receipt")
    assert receipt.validation_errors({"company": "A", "date": "1", "address": "x", "total": "2"}) == []
    errors = receipt.validation_errors({"company": "A", "date": "1", "total": 2, "extra": 1})
    assert any("address" in e for e in errors) and any("total" in e for e in errors)


def test_settings_default_is_the_two_local_tiers():
    settings = Settings.from_env({})
    assert list(settings.tiers) == ["trained", "small"]
    trained, small = settings.tiers["trained"], settings.tiers["small"]
    assert trained.backend == Backend.TRAINED and trained.prices == (0.0, 0.0) and trained.role == "small"
    assert small.backend == Backend.EMBEDDED and small.prices == (0.0, 0.0) and small.role == "small"


def test_settings_from_env_with_frontier_and_overrides():
    settings = Settings.from_env({
        "SMALLFIRST_SMALL_BACKEND": "foundry",
        "SMALLFIRST_SMALL_ENDPOINT": "https://x.services.ai.azure.com/openai/v1/",
        "SMALLFIRST_SMALL_MODEL": "Phi-4",
        "SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
        "SMALLFIRST_FRONTIER_ENDPOINT": "https://x.openai.azure.com",
        "SMALLFIRST_FRONTIER_MODEL": "gpt-4o",
        "SMALLFIRST_FRONTIER_PRICE_IN_PER_M": "5",
        "SMALLFIRST_CONCURRENCY": "16",
    })
    assert settings.concurrency == 16
    small, frontier = settings.tiers["small"], settings.tiers["frontier"]
    assert small.effective_structured_output == StructuredOutput.INSTRUCTIONS and not small.effective_logprobs
    assert small.prices == (0.125, 0.5)
    assert frontier.role == "frontier" and frontier.prices == (5.0, 10.0) and frontier.effective_logprobs


@pytest.mark.parametrize("endpoint", ["https://x.openai.azure.com", "https://x.services.ai.azure.com/",
                                      "https://x.cognitiveservices.azure.com/openai/v1/",
                                      "https://ep.eastus2.inference.ml.azure.com"])
def test_a_v1_tier_takes_a_resource_endpoint_or_its_v1_url_and_managed_compute_its_root(endpoint):
    env = {"SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": endpoint}
    assert Settings.from_env(env).tiers["small"].endpoint == endpoint


def test_the_legacy_foundry_inference_backend_keeps_foundrys_prices_and_capabilities():
    env = {"SMALLFIRST_SMALL_BACKEND": "foundry_inference", "SMALLFIRST_SMALL_ENDPOINT": "https://phi.eastus2.models.ai.azure.com",
           "SMALLFIRST_SMALL_MODEL": "Phi-4"}
    legacy = Settings.from_env(env).tiers["small"]
    assert legacy.backend == Backend.FOUNDRY_INFERENCE and legacy.prices == (0.125, 0.5)
    assert legacy.effective_structured_output == StructuredOutput.INSTRUCTIONS and not legacy.effective_logprobs


def test_settings_error_names_the_variable():
    with pytest.raises(ConfigError, match="SMALLFIRST_FRONTIER_BACKEND"):
        Settings.from_env({"SMALLFIRST_FRONTIER_BACKEND": "gpt5"})


REMOTE_FRONTIER = {"SMALLFIRST_FRONTIER_BACKEND": "azure_openai", "SMALLFIRST_FRONTIER_ENDPOINT": "https://x.openai.azure.com"}


@pytest.mark.parametrize("env, problem", [
    ({"SMALLFIRST_FRONTIER_ENDPOINT": "https://x.openai.azure.com", "SMALLFIRST_FRONTIER_MODEL": "gpt-4o"},
     "SMALLFIRST_FRONTIER_BACKEND is not set, though SMALLFIRST_FRONTIER_ENDPOINT, SMALLFIRST_FRONTIER_MODEL is"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_ENDPONT": "https://y"}, "SMALLFIRST_FRONTIER_ENDPONT: Extra inputs"),
    ({"SMALLFIRST_TRAINED_NAME": "other"}, "SMALLFIRST_TRAINED_NAME is not a setting"),
    ({"SMALLFIRST_TRAINED_N_THREADS": "-4"}, "SMALLFIRST_TRAINED_N_THREADS: Input should be greater than or equal to 1"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_PRICE_IN_PER_M": "inf"}, "PRICE_IN_PER_M: Input should be a finite"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_TIMEOUT_S": "nan"}, "TIMEOUT_S: Input should be a finite"),
    ({"SMALLFIRST_CLAIM_TTL_S": "inf"}, "SMALLFIRST_CLAIM_TTL_S: Input should be a finite"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_ENDPOINT": "x.openai.azure.com"}, "is not an http\\(s\\) URL"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_SAMPLES": "2", "SMALLFIRST_FRONTIER_SAMPLES_PER_REQUEST": "5"},
     "SMALLFIRST_FRONTIER_\\*: .*samples_per_request \\(5\\) is more than samples \\(2\\)"),
    ({"SMALLFIRST_TRAINED_BACKEND": "embedded"}, "SMALLFIRST_TRAINED_\\*: .*the trained tier, and it alone"),
    ({"SMALLFIRST_SMALL_BACKEND": "trained"}, "SMALLFIRST_SMALL_\\*: .*the trained tier, and it alone"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_API_VERSION": "2024-10-21"},
     "SMALLFIRST_FRONTIER_API_VERSION is not a setting: the OpenAI v1 API \\(/openai/v1/\\) takes no api-version"),
    ({"SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": "https://x.services.ai.azure.com/models"},
     "the OpenAI v1 API is at <resource>/openai/v1/; give the resource endpoint \\(https://x.services.ai.azure.com/\\)"),
    ({"SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": "https://phi.eastus2.models.ai.azure.com"},
     "is a hub-based serverless endpoint: use backend foundry_inference \\(legacy\\)"),
    ({"SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": "https://x.services.ai.azure.com/",
      "SMALLFIRST_SMALL_DEPLOYMENT": "blue"}, "deployment is for backend foundry on a managed-compute endpoint"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_REASONING_EFFORT": "low"},
     "reasoning_effort low takes no logprobs: set logprobs false"),
    ({**REMOTE_FRONTIER, "SMALLFIRST_FRONTIER_BACKEND": "foundry_inference",
      "SMALLFIRST_FRONTIER_REASONING_EFFORT": "none"}, "reasoning_effort is for the OpenAI-API backends"),
], ids=["remote-tier-without-backend", "misspelt-variable", "tier-name", "threads", "infinite-price", "nan-timeout",
        "infinite-claim-ttl", "endpoint-not-a-url", "more-choices-than-samples", "trained-not-trained",
        "another-tier-trained", "api-version", "v1-endpoint-with-another-path", "hub-serverless-on-foundry",
        "deployment-off-managed-compute", "reasoning-with-logprobs", "reasoning-on-legacy"])
def test_a_setting_that_would_misroute_or_fail_later_is_refused_naming_the_variable(env, problem):
    with pytest.raises(ConfigError, match=problem):
        Settings.from_env(env)


def test_catalog_is_a_directory_of_files(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"kind": "classification", "instruction": "i", "labels": [{"name": "a"}, {"name": "b"}]}))
    assert TaskCatalog(tmp_path).get("t").allowed_labels == ["a", "b"]


def test_smallfirst_tasks_lists_a_broken_task_file_with_its_problem_beside_the_good_ones(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from shared.cli import app

    (tmp_path / "routing.yaml").write_text("kind: classification\ninstruction: x\nlabels: [billing, other]\n")
    (tmp_path / "broken.yaml").write_text("kind: extraction\ninstruction: x\nschema_file: 5\n")
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["tasks"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    broken, routing = [line for line in result.output.splitlines() if "broken" in line or "routing" in line]
    assert "invalid" in broken and "schema_file must be a path" in broken
    assert "classification" in routing and "2 labels" in routing


def test_a_yaml_schema_key_json_cannot_hold_is_read_as_its_text(tmp_path):
    path = tmp_path / "numbered.yaml"
    path.write_text("kind: extraction\ninstruction: x\nschema:\n  type: object\n  properties:\n    1: {type: string}\n")
    task = load_task_file(path)
    assert list(task.json_schema["properties"]) == ["1"] and task.validation_errors({"1": "x"}) == []
