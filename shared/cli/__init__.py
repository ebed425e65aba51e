"""The `smallfirst` command line."""

from shared.cli.app import app

__all__ = ["app"]
