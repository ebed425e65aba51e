"""Alert rules on the app's metrics, under Pulumi mocks."""

from __future__ import annotations

import pytest

from smallfirst_infra.config import EnvironmentConfig
from tests.infra.mocks import build


@pytest.fixture(scope="module")
def alerting_env(tmp_path_factory):
    return build(EnvironmentConfig(alert_email="oncall@example.com", accuracy_target=0.97),
                 tmp_path_factory.mktemp("package"))


def test_failure_rate_and_live_accuracy_rules_watch_application_insights_and_notify_the_action_group(alerting_env):
    group = alerting_env.one("monitor:ActionGroup")
    assert group.inputs["emailReceivers"] == [
        {"name": "on-call", "emailAddress": "oncall@example.com", "useCommonAlertSchema": True}]
    rules = {r.inputs["description"]: r for r in alerting_env.of_type("monitor:ScheduledQueryRule")}
    assert len(rules) == 2
    appi = alerting_env.one("applicationinsights:Component")
    for rule in rules.values():
        assert rule.inputs["scopes"] == [appi.id] and rule.inputs["actions"]["actionGroups"] == [group.id]
    (failures,) = [r for d, r in rules.items() if "failed" in d]
    (criterion,) = failures.inputs["criteria"]["allOf"]
    assert "smallfirst.items" in criterion["query"] and criterion["operator"] == "GreaterThan"
    assert criterion["threshold"] == 0.05
    (accuracy,) = [r for d, r in rules.items() if "live accuracy" in d]
    (criterion,) = accuracy.inputs["criteria"]["allOf"]
    assert "smallfirst.shadow.accuracy_lower_bound" in criterion["query"]
    assert criterion["operator"] == "LessThan" and criterion["threshold"] == 0.97
    assert criterion["dimensions"][0]["name"] == "task"


def test_without_an_email_the_action_group_has_no_receivers(tmp_path_factory):
    env = build(EnvironmentConfig(), tmp_path_factory.mktemp("package"))
    assert not env.one("monitor:ActionGroup").inputs.get("emailReceivers")
