"""Explicit names for resources whose names are global DNS labels or tightly constrained.

azure-native names everything else itself (logical name + 8 random characters). These names cannot be left to
it: storage accounts allow only 3-24 lowercase letters and digits, and the AI subdomain, Function App, Key
Vault and ML endpoints are host names that another tenant may already hold. Each gets the namePrefix, a short
purpose, and a random suffix that Pulumi keeps in the state, so names are stable across `pulumi up` runs and
differ between stacks. With the longest prefix (11 characters) every name still fits its type's limit.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

SUFFIX_LENGTH = 6


class Names:
    def __init__(self, prefix: str, opts: pulumi.ResourceOptions) -> None:
        self.prefix = prefix
        self.suffix = random.RandomString(
            f"{prefix}-name-suffix", length=SUFFIX_LENGTH, lower=True, upper=False, numeric=True, special=False,
            opts=opts).result

    def storage_account(self, purpose: str) -> pulumi.Output[str]:
        """`<prefix><purpose><suffix>`: letters and digits only; purpose at most 7 characters."""
        assert purpose.isalnum() and purpose.islower() and len(purpose) <= 7, purpose
        return pulumi.Output.concat(self.prefix, purpose, self.suffix)

    def dns_label(self, purpose: str) -> pulumi.Output[str]:
        """`<prefix>-<purpose>-<suffix>`; purpose at most 5 characters keeps it within Key Vault's 24."""
        assert purpose.isalnum() and len(purpose) <= 5, purpose
        return pulumi.Output.concat(self.prefix, "-", purpose, "-", self.suffix)
