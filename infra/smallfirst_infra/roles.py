"""Role definitions (built-in GUIDs, the same in every tenant, and this stack's custom roles) and role assignments.

Each grant is scoped to what the code does with it (infra/README.md, "Least privilege", says why for each one),
and infra/policy/policies.py fails any assignment above the scope declared for its role.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, resources

# The Functions host's own storage (AzureWebJobsStorage) needs Owner: "Storage Blob Data Owner" is the documented
# role for the host's blob connection (learn.microsoft.com/azure/azure-functions/functions-reference
# #connecting-to-host-storage-with-an-identity, checked 2026-12-06). Nothing else gets Owner.
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
# Inference on OpenAI-format deployments (the frontier, the embeddings) with an Entra token, without the keys
# that Cognitive Services User may list (learn.microsoft.com/azure/ai-foundry/openai/how-to/role-based-access-control).
COGNITIVE_SERVICES_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"

# Data actions of the custom roles. Foundry Models (Phi-4 on the AI Services account) need MaaS/*: "If you prefer
# a custom role instead of Cognitive Services User, make sure it includes ... Microsoft.CognitiveServices/accounts/
# MaaS/*" (learn.microsoft.com/azure/ai-foundry/foundry-models/how-to/configure-entra-id, checked 2026-12-06).
FOUNDRY_MODELS_INFERENCE = "Microsoft.CognitiveServices/accounts/MaaS/*"
# Scoring a managed online endpoint with an Entra token; AzureML Data Scientist would add write and delete of
# endpoints and deployments (learn.microsoft.com/azure/machine-learning/how-to-authenticate-online-endpoint).
ONLINE_ENDPOINT_SCORE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action"

# Custom roles are named `<key> (<stack names' prefix and suffix>)`: role names are unique in a tenant, and the
# policy pack finds a custom role's declared scope by its key.
FOUNDRY_MODELS_USER_ROLE = "smallfirst-foundry-models-user"
ONLINE_ENDPOINT_SCORER_ROLE = "smallfirst-online-endpoint-scorer"


def role_definition_id(subscription_id: str, role: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


class CustomRole(pulumi.ComponentResource):
    """A data-plane-only role defined in the resource group: `role` is its GUID, for RoleAssignments.

    Custom roles are assignable at management group, subscription or resource group scope
    (learn.microsoft.com/azure/role-based-access-control/custom-roles, checked 2026-12-06); the assignment itself
    is made on the one resource that needs it.
    """

    def __init__(self, name: str, rg: resources.ResourceGroup, key: str, stack_label: pulumi.Input[str],
                 data_actions: list[str], description: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:CustomRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The definition's GUID is kept in the state, so the role keeps its id across `pulumi up` runs.
        self.guid = random.RandomUuid(f"{name}-guid", opts=child).result
        self.definition = authorization.RoleDefinition(
            f"{name}-definition", role_definition_id=self.guid, scope=rg.id, assignable_scopes=[rg.id],
            role_name=pulumi.Output.concat(key, " (", stack_label, ")"), role_type="CustomRole",
            description=description, permissions=[{"actions": [], "data_actions": data_actions}], opts=child)
        self.role = pulumi.Output.all(self.guid, self.definition.id).apply(lambda args: args[0])
        self.register_outputs({"role": self.role})


class RoleAssignments(pulumi.ComponentResource):
    """Keyless access for one identity: (label, scope, role GUID) grants; the GUID of a built-in or custom role."""

    def __init__(self, name: str, principal_id: pulumi.Input[str],
                 grants: list[tuple[str, pulumi.Input[str], pulumi.Input[str]]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:RoleAssignments", name, None, opts)
        subscription_id = authorization.get_client_config_output().subscription_id
        self.assignments = [
            authorization.RoleAssignment(
                f"{name}-{label}", principal_id=principal_id, principal_type="ServicePrincipal", scope=scope,
                role_definition_id=pulumi.Output.all(subscription_id, role).apply(
                    lambda args: role_definition_id(*args)),
                opts=pulumi.ResourceOptions(parent=self))
            for label, scope, role in grants
        ]
        self.register_outputs({})
