"""Alerts on the app's own metrics (shared/core/telemetry.py, shared/monitoring/shadow.py), to an action group.

Two scheduled query rules over Application Insights: the share of failed items, and the lower bound of the
shadow live-accuracy interval per task. Email goes to `alertEmail` when set (none: the rules fire into an
action group without receivers, visible in the portal).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import monitor, resources

FAILURE_RATE_QUERY = """customMetrics
| where name == "smallfirst.items"
| extend status = tostring(customDimensions["smallfirst.status"])
| summarize failed = sumif(valueSum, status == "failed"), total = sum(valueSum)
| extend failure_rate = iff(total > 0, failed / total, 0.0)"""
LIVE_ACCURACY_QUERY = """customMetrics
| where name == "smallfirst.shadow.accuracy_lower_bound"
| extend task = tostring(customDimensions["smallfirst.task"])
| summarize lower_bound = min(valueMin) by task"""


class Alerts(pulumi.ComponentResource):
    def __init__(self, name: str, rg: resources.ResourceGroup, app_insights_id: pulumi.Input[str], *,
                 email: str, failure_rate_threshold: float, accuracy_target: float,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        receivers = [{"name": "on-call", "email_address": email, "use_common_alert_schema": True}] if email else []
        self.action_group = monitor.ActionGroup(
            f"{name}-ag", resource_group_name=rg.name, location="Global", group_short_name="smallfirst",
            enabled=True, email_receivers=receivers, opts=child)
        actions = {"action_groups": [self.action_group.id]}
        once = {"number_of_evaluation_periods": 1, "min_failing_periods_to_alert": 1}
        self.failure_rate = monitor.ScheduledQueryRule(
            f"{name}-failures", resource_group_name=rg.name, scopes=[app_insights_id], severity=2, enabled=True,
            description=f"More than {failure_rate_threshold:.0%} of items failed in the last hour",
            evaluation_frequency="PT15M", window_size="PT1H", actions=actions, auto_mitigate=True,
            criteria={"all_of": [{
                "query": FAILURE_RATE_QUERY, "time_aggregation": "Maximum", "metric_measure_column": "failure_rate",
                "operator": "GreaterThan", "threshold": failure_rate_threshold, "failing_periods": once}]},
            opts=child)
        self.live_accuracy = monitor.ScheduledQueryRule(
            f"{name}-live-accuracy", resource_group_name=rg.name, scopes=[app_insights_id], severity=2, enabled=True,
            description=f"The lower bound of a task's live accuracy (shadow pairs) is below {accuracy_target}",
            evaluation_frequency="PT1H", window_size="PT6H", actions=actions, auto_mitigate=True,
            criteria={"all_of": [{
                "query": LIVE_ACCURACY_QUERY, "time_aggregation": "Minimum", "metric_measure_column": "lower_bound",
                "dimensions": [{"name": "task", "operator": "Include", "values": ["*"]}],
                "operator": "LessThan", "threshold": accuracy_target, "failing_periods": once}]},
            opts=child)
        self.register_outputs({"action_group": self.action_group.id})
