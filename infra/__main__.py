"""`pulumi up` entry point: one smallfirst environment from typed stack config."""

import pulumi

from smallfirst_infra.config import EnvironmentConfig
from smallfirst_infra.environment import SmallfirstEnvironment

env = SmallfirstEnvironment("smallfirst", EnvironmentConfig.from_pulumi(pulumi.Config("smallfirst")))
for name, value in env.outputs.items():
    pulumi.export(name, value)
