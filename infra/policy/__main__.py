"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policy` (the constructor starts a server)."""

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy
from policies import POLICIES

PolicyPack(
    name="smallfirst-security",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(name=name, description=description, validate=validate)
        for name, (validate, description) in POLICIES.items()
    ],
)
