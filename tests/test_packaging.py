"""Project rules that a fresh clone and a deploy depend on."""

from __future__ import annotations

import ast
import importlib.util
import json

from tests.conftest import REPO


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requirements_txt_matches_pyproject():
    assert (REPO / "requirements.txt").read_text() == _load_script("write_requirements").requirements()


def test_shared_never_imports_azure_functions():
    offenders = []
    for path in (REPO / "shared").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "azure.functions" or n.startswith("azure.functions.") or n.startswith("functions") or
                   n.startswith("azurefunctions") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_host_json_and_settings_sample():
    host = json.loads((REPO / "host.json").read_text())
    assert host["version"] == "2.0" and host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert host["extensions"]["blobs"]["poisonBlobThreshold"] >= 1
    values = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python" and values["DataStorage"] == "UseDevelopmentStorage=true"
    assert "SMALLFIRST_SMALL_BACKEND" not in values  # the local profile decides: embedded only where installed
    assert host["telemetryMode"] == "OpenTelemetry"
    from shared.core.config import Settings

    assert Settings.from_env({k: v for k, v in values.items() if k.startswith("SMALLFIRST_")}).tiers["trained"]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/demo.sh" in readme
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
