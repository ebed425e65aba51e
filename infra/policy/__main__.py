"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policy` (the constructor starts a server)."""

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy
from policies import POLICIES, STACK_POLICIES

PolicyPack(
    name="smallfirst-security",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(name=name, description=description, validate=validate)
        for name, (validate, description) in POLICIES.items()
    ] + [
        StackValidationPolicy(name=name, description=description, validate=validate)
        for name, (validate, description) in STACK_POLICIES.items()
    ],
)
