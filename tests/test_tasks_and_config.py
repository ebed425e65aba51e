from __future__ import annotations

import json

import pytest

from shared.core.config import Backend, Settings, StructuredOutput
from shared.core.tasks import ClassificationTask, ExtractionTask, TaskCatalog, load_task_file
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
        "SMALLFIRST_SMALL_ENDPOINT": "https://x.services.ai.azure.com/models",
        "SMALLFIRST_SMALL_MODEL": "Phi-4",
        "SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
        "SMALLFIRST_FRONTIER_ENDPOINT": "https://x.openai.azure.com",
        "SMALLFIRST_FRONTIER_PRICE_IN_PER_M": "5",
        "SMALLFIRST_CONCURRENCY": "16",
    })
    assert settings.concurrency == 16
    small, frontier = settings.tiers["small"], settings.tiers["frontier"]
    assert small.effective_structured_output == StructuredOutput.INSTRUCTIONS and not small.effective_logprobs
    assert small.prices == (0.125, 0.5)
    assert frontier.role == "frontier" and frontier.prices == (5.0, 10.0) and frontier.effective_logprobs


def test_settings_error_names_the_variable():
    with pytest.raises(ConfigError, match="SMALLFIRST_FRONTIER_BACKEND"):
        Settings.from_env({"SMALLFIRST_FRONTIER_BACKEND": "gpt5"})


def test_catalog_is_a_directory_of_files(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"kind": "classification", "instruction": "i", "labels": [{"name": "a"}, {"name": "b"}]}))
    assert TaskCatalog(tmp_path).get("t").allowed_labels == ["a", "b"]
