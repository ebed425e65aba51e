"""The trained tier follows the head store's activations without a restart, at most one refresh interval late."""

from __future__ import annotations

import pytest

from shared.core.config import Settings
from shared.foundation.tasks import TaskCatalog
from shared.core.tiers.trained import TrainedTier
from shared.errors import TierError
from shared.learning.activation import activate
from shared.learning.artifact import save_head
from shared.learning.classifier import TRAINED_CONFIDENCE_METHOD, ZERO_SHOT_CONFIDENCE_METHOD
from shared.learning.stores import LocalFolderStore
from shared.learning.training_data import TrainingSet
from tests.conftest import REPO


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def task():
    """support_ticket with no head, English-only so that its embedder is MiniLM, support_head's."""
    return TaskCatalog(REPO / "tasks").get("support_ticket").model_copy(update={"trained_head": None, "languages": []})


def test_a_newly_activated_head_answers_after_the_refresh_interval(tmp_path, task, support_head, embedder):
    clock = Clock()
    config = Settings.from_env({"SMALLFIRST_TRAINED_HEADS_DIR": str(tmp_path),
                                "SMALLFIRST_TRAINED_HEADS_REFRESH_S": "60"}).tiers["trained"]
    tier = TrainedTier(config, clock=clock)
    assert tier.classify(task, "I was charged twice").confidence_method == ZERO_SHOT_CONFIDENCE_METHOD

    store = LocalFolderStore(tmp_path)
    saved = save_head(store, task="support_ticket", classifier=support_head, embedder=embedder,
                      training_data=TrainingSet([]).summary())
    activate(store, "support_ticket", saved.version, reason="test")
    clock.now += 59
    assert tier.classify(task, "I was charged twice").confidence_method == ZERO_SHOT_CONFIDENCE_METHOD
    clock.now += 2
    answer = tier.classify(task, "I was charged twice")
    assert answer.confidence_method == TRAINED_CONFIDENCE_METHOD and answer.value == "billing"
    assert tier.active_head(task).version == saved.version


def test_an_activation_overrides_the_task_files_head_and_a_missing_one_is_a_tier_error(tmp_path, task, support_head,
                                                                                      embedder):
    config = Settings.from_env({"SMALLFIRST_TRAINED_HEADS_DIR": str(tmp_path)}).tiers["trained"]
    store = LocalFolderStore(tmp_path)
    saved = save_head(store, task="support_ticket", classifier=support_head, embedder=embedder,
                      training_data=TrainingSet([]).summary())
    named = task.model_copy(update={"trained_head": saved.version})
    assert TrainedTier(config).active_head(named).origin == "the task file's trained_head"

    activate(store, "support_ticket", "20990101T000000.000000Z", reason="a version that was never saved")
    with pytest.raises(TierError, match="20990101T000000.000000Z"):
        TrainedTier(config).classify(named, "I was charged twice")


def test_the_azure_openai_embedder_setting_makes_the_tier_embed_through_the_deployment(tmp_path, task, support_head,
                                                                                       embedder):
    from tests.learning.test_azure_openai_embedder import EmbeddingsServer

    with EmbeddingsServer(dimension=1536) as server:
        config = Settings.from_env({"SMALLFIRST_TRAINED_HEADS_DIR": str(tmp_path),
                                    "SMALLFIRST_TRAINED_EMBEDDER": "azure_openai",
                                    "SMALLFIRST_TRAINED_ENDPOINT": server.endpoint,
                                    "SMALLFIRST_TRAINED_API_KEY": "test-key"}).tiers["trained"]
        tier = TrainedTier(config)
        answer = tier.classify(task, "I was charged twice")
        assert tier.embedder.id == "azure-openai/text-embedding-3-small" and tier.embedder.dimension == 1536
        assert answer.confidence_method == ZERO_SHOT_CONFIDENCE_METHOD
        assert server.requests[-1]["path"] == "/openai/deployments/text-embedding-3-small/embeddings"
        assert server.requests[-1]["body"]["input"] == ["I was charged twice"]
        # What the deployment billed is the answer's input, at text-embedding-3-small's list price by default.
        assert answer.tokens_in == 4  # the wire server bills a token per word
        assert config.cost_usd(answer.tokens_in, answer.tokens_out) == pytest.approx(4 * 0.02 / 1_000_000)

        store = LocalFolderStore(tmp_path)  # a MiniLM head cannot serve an Azure OpenAI embedding space
        saved = save_head(store, task="support_ticket", classifier=support_head, embedder=embedder,
                          training_data=TrainingSet([]).summary())
        activate(store, "support_ticket", saved.version, reason="test")
        with pytest.raises(TierError, match="retrain the head"):
            TrainedTier(config).classify(task, "I was charged twice")


def test_the_trained_tier_is_free_with_the_local_embedder_and_priced_as_set_with_a_deployment():
    local = Settings.from_env({}).tiers["trained"]
    assert local.prices == (0.0, 0.0)
    managed = Settings.from_env({"SMALLFIRST_TRAINED_EMBEDDER": "azure_openai"}).tiers["trained"]
    assert managed.prices == (0.02, 0.0)
    priced = Settings.from_env({"SMALLFIRST_TRAINED_EMBEDDER": "azure_openai",
                                "SMALLFIRST_TRAINED_PRICE_IN_PER_M": "0.13"}).tiers["trained"]
    assert priced.prices == (0.13, 0.0)


def test_local_embedder_answers_carry_the_tokens_read_at_no_cost(tmp_path, task):
    config = Settings.from_env({"SMALLFIRST_TRAINED_HEADS_DIR": str(tmp_path)}).tiers["trained"]
    answer = TrainedTier(config).classify(task, "I was charged twice")
    assert answer.tokens_in == 6  # [CLS] i was charged twice [SEP]
    assert config.cost_usd(answer.tokens_in, answer.tokens_out) == 0.0
