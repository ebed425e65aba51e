"""The smallfirst Pulumi components."""
