"""The embeddings deployment switch and the retraining settings, under the Pulumi mocks."""

from __future__ import annotations

import pytest

from shared.core.config import Settings
from smallfirst_infra.config import EnvironmentConfig
from smallfirst_infra.storage import DATA_CONTAINERS
from shared.pipeline.blob_names import Containers
from tests.infra.mocks import build
from tests.infra.test_environment import settings_of


@pytest.fixture(scope="module")
def default_env(tmp_path_factory):
    return build(EnvironmentConfig(), tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="module")
def embeddings_env(tmp_path_factory):
    config = EnvironmentConfig(embeddings_deployment=True, retrain_tasks="support_ticket,banking77")
    return build(config, tmp_path_factory.mktemp("package"))


def deployments(mocks) -> dict:
    return {d.inputs["deploymentName"]: d for d in mocks.of_type("cognitiveservices:Deployment")}


def test_no_embeddings_deployment_unless_switched_on_and_the_tier_embeds_locally(default_env):
    assert set(deployments(default_env)) == {"phi-4", "gpt-5.4-mini"}
    settings = settings_of(default_env)
    assert Settings.from_env(settings).tiers["trained"].embedder == "auto"  # MiniLM or USE-m, both local


def test_the_switch_deploys_text_embedding_3_small_after_the_other_deployments(embeddings_env):
    embedding = deployments(embeddings_env)["text-embedding-3-small"]
    # No version: the service's default version of text-embedding-3-small.
    assert embedding.inputs["properties"]["model"] == {"format": "OpenAI", "name": "text-embedding-3-small"}
    assert embedding.inputs["sku"] == {"name": "GlobalStandard", "capacity": 50}
    assert deployments(embeddings_env)["gpt-5.4-mini"].name in embeddings_env.dependencies[embedding.name]
    assert embeddings_env.name_problems == []


def test_the_switch_points_the_trained_tier_at_the_deployment_keylessly(embeddings_env):
    settings = settings_of(embeddings_env)
    subdomain = embeddings_env.one("cognitiveservices:Account").inputs["properties"]["customSubDomainName"]
    trained = Settings.from_env(settings).tiers["trained"]  # read exactly as the app reads its settings
    assert (trained.embedder, trained.endpoint, trained.embeddings_deployment) == (
        "azure_openai", f"https://{subdomain}.openai.azure.com/", "text-embedding-3-small")
    assert trained.api_key is None


def test_retraining_settings_and_the_models_container(default_env, embeddings_env):
    assert settings_of(default_env)["SMALLFIRST_RETRAIN_SCHEDULE"] == "0 0 3 * * *"  # the timer needs a value
    assert Settings.from_env(settings_of(default_env)).retrain_tasks == []
    assert Settings.from_env(settings_of(embeddings_env)).retrain_tasks == ["support_ticket", "banking77"]
    assert Settings.from_env(settings_of(default_env)).tiers["trained"].heads_store == "blob"
    containers = {c.inputs["containerName"] for c in default_env.of_type("storage:BlobContainer")}
    assert set(Containers().all()) == set(DATA_CONTAINERS) and "models" in containers
