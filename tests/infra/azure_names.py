"""Azure's naming rules per azure-native resource type, written down independently of the program.

Each entry: the input property that carries the Azure name (what azure-native autonames when it is left out),
and the rule from Azure's "naming rules and restrictions for Azure resources". A type missing here fails the
test that checks names, so a new resource type cannot slip through unchecked.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class NameRule:
    name_property: str
    pattern: str
    description: str
    autonamed_as_uuid: bool = False
    no_double_hyphen: bool = False

    def problem(self, name: str) -> str | None:
        if not re.fullmatch(self.pattern, name) or (self.no_double_hyphen and "--" in name):
            return f"{name!r}: {self.description}"
        return None


ALNUM_HYPHEN = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

RULES: dict[str, NameRule] = {
    "azure-native:resources:ResourceGroup": NameRule(
        "resourceGroupName", r"[\w\-.()]{0,89}[\w\-()]", "1-90 letters, digits, _-.(), not ending in ."),
    "azure-native:resources:Deployment": NameRule(
        "deploymentName", r"[\w\-.()]{1,64}", "1-64 letters, digits, _-.()"),
    "azure-native:storage:StorageAccount": NameRule(
        "accountName", r"[a-z0-9]{3,24}", "3-24 lowercase letters and digits"),
    "azure-native:storage:BlobServiceProperties": NameRule("blobServicesName", r"default", "always 'default'"),
    "azure-native:storage:ManagementPolicy": NameRule("managementPolicyName", r"default", "always 'default'"),
    "azure-native:storage:BlobContainer": NameRule(
        "containerName", r"(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*", "3-63 lowercase letters, digits, single hyphens"),
    "azure-native:storage:Queue": NameRule(
        "queueName", r"(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*", "3-63 lowercase letters, digits, single hyphens"),
    "azure-native:operationalinsights:Workspace": NameRule(
        "workspaceName", r"(?=.{4,63}$)" + ALNUM_HYPHEN, "4-63 letters, digits, hyphens; alphanumeric ends"),
    "azure-native:applicationinsights:Component": NameRule(
        "resourceName", r"[^%&\\?/]{0,259}[^%&\\?/. ]", "1-260 characters, none of %&\\?/, not ending in . or space"),
    "azure-native:monitor:ActionGroup": NameRule(
        "actionGroupName", r"[^%&\\?/]{1,260}", "1-260 characters, none of %&\\?/"),
    "azure-native:monitor:ScheduledQueryRule": NameRule(
        "ruleName", r"[^<>*%{}&:\\?+/#|]{1,260}", "1-260 characters, none of <>*%{}&:\\?+/#|"),
    "azure-native:cognitiveservices:Account": NameRule(
        "accountName", r"(?=.{2,64}$)" + ALNUM_HYPHEN, "2-64 letters, digits, hyphens; alphanumeric ends"),
    "azure-native:cognitiveservices:Project": NameRule(
        "projectName", r"(?=.{2,64}$)" + ALNUM_HYPHEN, "2-64 letters, digits, hyphens; alphanumeric ends"),
    "azure-native:cognitiveservices:Deployment": NameRule(
        "deploymentName", r"[a-zA-Z0-9][\w.-]{1,63}", "2-64 letters, digits, _.-"),
    "azure-native:managedidentity:UserAssignedIdentity": NameRule(
        "resourceName", r"[a-zA-Z0-9][\w-]{2,127}", "3-128 letters, digits, _-, starting alphanumeric"),
    "azure-native:web:AppServicePlan": NameRule(
        "name", r"(?=.{1,60}$)" + ALNUM_HYPHEN, "1-60 letters, digits, hyphens"),
    "azure-native:web:WebApp": NameRule(
        "name", r"(?=.{2,60}$)" + ALNUM_HYPHEN, "2-60 letters, digits, hyphens; alphanumeric ends (global DNS)"),
    "azure-native:authorization:RoleAssignment": NameRule(
        "roleAssignmentName", GUID, "a GUID", autonamed_as_uuid=True),
    "azure-native:eventgrid:SystemTopic": NameRule(
        "systemTopicName", r"[a-zA-Z0-9-]{3,128}", "3-128 letters, digits, hyphens"),
    "azure-native:eventgrid:SystemTopicEventSubscription": NameRule(
        "eventSubscriptionName", r"[a-zA-Z0-9-]{3,64}", "3-64 letters, digits, hyphens"),
    "azure-native:keyvault:Vault": NameRule(
        "vaultName", r"[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]", "3-24 letters, digits, single hyphens; starts with a letter",
        no_double_hyphen=True),
    "azure-native:keyvault:Secret": NameRule("secretName", r"[a-zA-Z0-9-]{1,127}", "1-127 letters, digits, hyphens"),
    "azure-native:machinelearningservices:Workspace": NameRule(
        "workspaceName", r"[a-zA-Z0-9][\w-]{2,32}", "3-33 letters, digits, _-, starting alphanumeric"),
    "azure-native:machinelearningservices:OnlineEndpoint": NameRule(
        "endpointName", r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", "3-32 letters, digits, hyphens; starts with a letter"),
    "azure-native:machinelearningservices:OnlineDeployment": NameRule(
        "deploymentName", r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", "3-32 letters, digits, hyphens; starts with a letter"),
    "azure-native:machinelearningservices:ServerlessEndpoint": NameRule(
        "name", r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]", "3-32 letters, digits, hyphens; starts with a letter"),
    "azure-native:authorization:RoleDefinition": NameRule("roleDefinitionId", GUID, "a GUID", autonamed_as_uuid=True),
    # Site config children are named by their site.
    "azure-native:web:WebAppAuthSettingsV2": NameRule(
        "name", r"(?=.{2,60}$)" + ALNUM_HYPHEN, "the site's name"),
    "azure-native:web:WebAppScmAllowed": NameRule("name", r"(?=.{2,60}$)" + ALNUM_HYPHEN, "the site's name"),
    "azure-native:web:WebAppFtpAllowed": NameRule("name", r"(?=.{2,60}$)" + ALNUM_HYPHEN, "the site's name"),
    "azure-native:network:VirtualNetwork": NameRule(
        "virtualNetworkName", r"[a-zA-Z0-9][\w.-]{0,62}\w", "2-64 letters, digits, _.-; alphanumeric start, word end"),
    "azure-native:network:Subnet": NameRule(
        "subnetName", r"[a-zA-Z0-9](?:[\w.-]{0,78}\w)?", "1-80 letters, digits, _.-; alphanumeric start, word end"),
    "azure-native:network:PrivateEndpoint": NameRule(
        "privateEndpointName", r"[a-zA-Z0-9][\w.-]{0,62}\w", "2-64 letters, digits, _.-; alphanumeric start, word end"),
    "azure-native:network:PrivateDnsZoneGroup": NameRule(
        "privateDnsZoneGroupName", r"[a-zA-Z0-9](?:[\w.-]{0,78}\w)?", "1-80 letters, digits, _.-"),
    "azure-native:privatedns:PrivateZone": NameRule(
        "privateZoneName", r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
        "a DNS zone name (1-253 characters, labels of 1-63)"),
    "azure-native:privatedns:VirtualNetworkLink": NameRule(
        "virtualNetworkLinkName", r"[a-zA-Z0-9](?:[\w.-]{0,78}\w)?", "1-80 letters, digits, _.-"),
}

# Types with no Azure name: Pulumi-side resources.
UNNAMED_TYPES = ("random:index/randomString:RandomString", "random:index/randomPassword:RandomPassword",
                 "random:index/randomUuid:RandomUuid", "pulumi-python:dynamic:Resource",
                 # Entra objects: a display name (not unique) and ids Entra assigns.
                 "azuread:index/application:Application", "azuread:index/applicationIdentifierUri:ApplicationIdentifierUri",
                 "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized",
                 "azuread:index/servicePrincipal:ServicePrincipal", "azuread:index/appRoleAssignment:AppRoleAssignment")


def autoname(logical_name: str, rule: NameRule, rng: random.Random) -> str:
    """What azure-native does with no explicit name: the logical name plus 8 random characters (or a GUID)."""
    if rule.autonamed_as_uuid:
        return str(uuid.UUID(int=rng.getrandbits(128)))
    return logical_name + "".join(rng.choices(string.ascii_lowercase + string.digits, k=8))
