"""`smallfirst settings`: the settings in effect (tiers, backends, endpoints, models, prices, storage, telemetry),
each with where its value came from, secrets masked."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Mapping

import typer
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.table import Table

from shared.cli.common import console
from shared.cli.local_settings import SettingSource
from shared.core.config import PREFIX, Settings, TierConfig

# A tier's settings shown whether set or not; any other of its fields is shown where it is set.
TIER_FIELDS = ("role", "backend", "endpoint", "model", "api_key", "deployment", "reasoning_effort")
STORAGE_CONNECTIONS = ("DataStorage", "AzureWebJobsStorage")
TELEMETRY_SETTINGS = ("SMALLFIRST_TELEMETRY", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                      "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
MASK = "****"
SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN)$", re.IGNORECASE)
# The parts of a connection string that are secrets (storage account keys, SAS signatures).
SECRET_PART = re.compile(r"\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig)=[^;&]+", re.IGNORECASE)


class SettingRow(BaseModel):
    group: str
    name: str
    value: str | None
    source: str


def masked(name: str, value: str) -> str:
    if SECRET_NAME.search(name):
        return MASK
    return SECRET_PART.sub(lambda match: f"{match.group(1)}={MASK}", value)


def _shown(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return MASK
    return ", ".join(value) if isinstance(value, list) else str(value)


class SettingsView:
    """The rows `smallfirst settings` prints, from the environment and what the local files applied to it."""

    def __init__(self, applied: Mapping[str, SettingSource], env: Mapping[str, str] | None = None) -> None:
        self.applied = applied
        self.env = os.environ if env is None else env

    def source(self, name: str) -> SettingSource:
        if not self.env.get(name):  # an empty value is no value (Settings reads it so)
            return "default"
        return self.applied.get(name, "environment")

    def raw(self, group: str, name: str, default: str | None = None) -> SettingRow:
        value = self.env.get(name) or default
        return SettingRow(group=group, name=name, value=None if value is None else masked(name, value),
                          source=self.source(name))

    def rows(self, settings: Settings) -> list[SettingRow]:
        rows = [SettingRow(group="general", name=f"{PREFIX}{field.upper()}", value=_shown(getattr(settings, field)),
                           source=self.source(f"{PREFIX}{field.upper()}"))
                for field in Settings.model_fields if field != "tiers"]
        rows.append(self.raw("general", f"{PREFIX}LOCAL_PROFILE"))
        for tier in settings.tiers.values():
            rows.extend(self.tier_rows(tier))
        for connection in STORAGE_CONNECTIONS:
            rows.append(self.raw("storage", connection))
            rows.extend(self.raw("storage", name) for name in sorted(self.env) if name.startswith(f"{connection}__"))
        rows.extend(self.raw("telemetry", name, "off" if name == "SMALLFIRST_TELEMETRY" else None)
                    for name in TELEMETRY_SETTINGS)
        return rows

    def tier_rows(self, tier: TierConfig) -> list[SettingRow]:
        prefix = f"{PREFIX}{tier.name.upper()}_"
        group = f"tier {tier.name}"
        shown = [field for field in TierConfig.model_fields
                 if field in TIER_FIELDS or (field != "name" and not field.startswith("price") and self.env.get(
                     prefix + field.upper()))]
        rows = [SettingRow(group=group, name=prefix + field.upper(), value=_shown(getattr(tier, field)),
                           source=self.source(prefix + field.upper())) for field in shown]
        priced_by = tier.price_source or "unknown"
        for name, value in (("PRICE_IN_PER_M", tier.prices[0]), ("PRICE_OUT_PER_M", tier.prices[1])):
            source = self.source(prefix + name)
            rows.append(SettingRow(group=group, name=prefix + name, value=None if tier.price_source is None and
                                   source == "default" else f"{value:g}",
                                   source=source if source != "default" else f"default ({priced_by})"))
        return rows


def settings(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="print the settings as JSON (rows and warnings)"),
) -> None:
    """Show the settings in effect, where each value came from (environment, local.settings.json, .env or the
    default), secrets masked."""
    current = Settings.from_env()
    rows = SettingsView(ctx.obj or {}).rows(current)
    warnings = [tier.price_warning for tier in current.tiers.values() if tier.price_warning]
    if as_json:
        sys.stdout.write(json.dumps({"settings": [row.model_dump() for row in rows], "warnings": warnings},
                                    indent=2) + "\n")
    else:
        table = Table("group", "value", "source")
        table.add_column("setting", overflow="fold")  # a setting's name is never cut short
        for row in rows:
            table.add_row(row.group, "-" if row.value is None else row.value, row.source, row.name)
        Console().print(table)
    for warning in warnings:
        console.print(f"[yellow]warning: {warning}[/]")
