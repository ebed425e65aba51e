"""Built-in Azure role definition ids (stable GUIDs, the same in every tenant) and role assignments."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization

STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
COGNITIVE_SERVICES_USER = "a97b65f3-24c7-4388-baec-2e87135dc908"
COGNITIVE_SERVICES_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
AZUREML_DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"  # may call online endpoints with an Entra token
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def role_definition_id(subscription_id: str, role: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


class RoleAssignments(pulumi.ComponentResource):
    """Keyless access for one identity: (label, scope, role) grants."""

    def __init__(self, name: str, principal_id: pulumi.Input[str],
                 grants: list[tuple[str, pulumi.Input[str], str]], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:RoleAssignments", name, None, opts)
        subscription_id = authorization.get_client_config_output().subscription_id
        self.assignments = [
            authorization.RoleAssignment(
                f"{name}-{label}", principal_id=principal_id, principal_type="ServicePrincipal", scope=scope,
                role_definition_id=subscription_id.apply(lambda sub, role=role: role_definition_id(sub, role)),
                opts=pulumi.ResourceOptions(parent=self))
            for label, scope, role in grants
        ]
        self.register_outputs({})

