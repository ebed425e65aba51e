"""The local settings files every command and the local host read: local.settings.json's Values and the .env
beside it, applied to the environment where it has no value of its own (as Core Tools applies local.settings.json).
Local only: the Functions app in Azure reads app settings from its environment alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, MutableMapping

from dotenv import dotenv_values

from shared.errors import ConfigError

# Where a setting's value comes from, as `smallfirst settings` shows it: the environment wins over the local files
# (as under Core Tools, which applies local.settings.json's Values only where the environment has no value).
SettingSource = Literal["environment", "local.settings.json", ".env", "default"]
LOCAL_SETTINGS_FILE = "local.settings.json"
DOTENV_FILE = ".env"


def local_setting_values(settings_file: Path) -> dict[str, tuple[str, SettingSource]]:
    """The values of `settings_file` (local.settings.json's Values) and of the .env beside it, each with its file;
    local.settings.json's win over .env's."""
    values: dict[str, tuple[str, SettingSource]] = {}
    dotenv_file = settings_file.with_name(DOTENV_FILE)
    if dotenv_file.is_file():
        values.update({key: (value, ".env") for key, value in dotenv_values(dotenv_file).items() if value is not None})
    if settings_file.is_file():
        try:
            local = json.loads(settings_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{settings_file} is not JSON: {exc}") from exc
        found = local.get("Values") if isinstance(local, dict) else None
        if not isinstance(found, dict):
            raise ConfigError(f"{settings_file} has no \"Values\" object (see local.settings.sample.json)")
        values.update({key: (str(value), LOCAL_SETTINGS_FILE) for key, value in found.items()})
    return values


def load_local_settings(settings_file: Path, environ: MutableMapping[str, str] | None = None) -> dict[str, SettingSource]:
    """Applies `settings_file` and the .env beside it to the environment where it has no value of its own, for the
    command line and the local host alike; returns the file each applied setting came from."""
    environ = os.environ if environ is None else environ
    applied: dict[str, SettingSource] = {}
    for key, (value, source) in local_setting_values(settings_file).items():
        if key not in environ:
            environ[key] = value
            applied[key] = source
    return applied
