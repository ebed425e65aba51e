"""The code package and its one-deploy publish, against a fake `/api/publish` on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from smallfirst_infra.config import REPOSITORY_ROOT
from smallfirst_infra.package import build_package
from smallfirst_infra.publish import OneDeployPublisher, scm_url_for
from tests.infra.loopback import RecordingServer

APP_FILES = {"function_app.py": "import shared\n", "host.json": "{}\n", "requirements.txt": "azure-functions\n",
             "shared/__init__.py": "", "shared/tiers/foundry.py": "x = 1\n",
             # a sub-package that does not exist yet: whole directories ship, not a list of files
             "shared/engine/cascade/core.py": "y = 2\n",
             "functions/__init__.py": "", "functions/blob_ingest.py": "", "tasks/banking77.yaml": "name: b\n"}
LOCAL_ONLY = {"tests/test_x.py": "", ".venv/bin/python": "", "node_modules/azurite/index.js": "",
              "local.settings.json": "{}", ".azurite/__blobstorage__/x": "", "shared/__pycache__/a.cpython-311.pyc": "",
              "infra/__main__.py": "", "docs/x.md": ""}


@pytest.fixture
def app_tree(tmp_path) -> Path:
    """A checkout with the repository's own `.funcignore` and everything a developer machine accumulates."""
    root = tmp_path / "repo"
    for name, text in {**APP_FILES, **LOCAL_ONLY}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    shutil.copy(REPOSITORY_ROOT / ".funcignore", root / ".funcignore")
    return root


def zip_names(data: bytes) -> set[str]:
    return set(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_package_holds_the_app_and_none_of_the_local_files(app_tree):
    names = zip_names(build_package(app_tree).zip_bytes)
    assert set(APP_FILES) <= names
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"tests", ".venv", "node_modules", "local.settings.json", ".azurite", "infra", "docs"}
    assert not any("__pycache__" in name for name in names)


def test_package_of_this_repository_has_the_function_app_entry_points():
    names = zip_names(build_package(REPOSITORY_ROOT).zip_bytes)
    assert {"function_app.py", "host.json", "requirements.txt", "shared/__init__.py", "functions/blob_ingest.py",
            "functions/http_api.py"} <= names
    assert any(name.startswith("tasks/") for name in names)
    assert not any(name.startswith(("tests/", "infra/", ".venv/", "node_modules/")) for name in names)


def test_package_hash_changes_with_packaged_files_only(app_tree):
    before = build_package(app_tree).sha256
    assert build_package(app_tree).sha256 == before  # reproducible: no timestamps in the zip
    (app_tree / "tests" / "test_x.py").write_text("changed")
    (app_tree / "local.settings.json").write_text('{"changed": true}')
    assert build_package(app_tree).sha256 == before
    (app_tree / "shared" / "engine" / "cascade" / "core.py").write_text("y = 3\n")
    assert build_package(app_tree).sha256 != before


def test_publisher_diff_republishes_when_the_package_hash_changes():
    publisher = OneDeployPublisher(token_source=lambda: "t")
    old = {"scm_url": "https://a.scm.azurewebsites.net", "package_sha256": "1", "package_path": "/x/app-1.zip"}
    assert publisher.diff("id", old, {**old, "package_path": "/elsewhere/app-1.zip"}).changes is False
    assert publisher.diff("id", old, {**old, "package_sha256": "2"}).changes is True


def test_scm_url_of_plain_and_regional_host_names():
    assert scm_url_for("app.azurewebsites.net") == "https://app.scm.azurewebsites.net"
    assert scm_url_for("app-x1.swedencentral-01.azurewebsites.net") == (
        "https://app-x1.scm.swedencentral-01.azurewebsites.net")


class FakeOneDeploy:
    """/api/publish accepts the zip (after `publish_failures` refusals); the deployment then builds and ends."""

    def __init__(self, publish_failures: list[tuple[int, str]] = (), final_status: int = 4) -> None:
        self.publish_failures = list(publish_failures)
        self.final_status = final_status
        self.polls = 0

    def __call__(self, request, _all):
        path = urlsplit(request.path).path
        if request.method == "POST" and path == "/api/publish":
            if self.publish_failures:
                status, body = self.publish_failures.pop(0)
                return status, "text/plain", body.encode()
            return 202, "application/json", b'"dep-42"'
        if request.method == "GET" and path == "/api/deployments/dep-42":
            self.polls += 1
            status = 1 if self.polls == 1 else self.final_status
            body = {"id": "dep-42", "status": status, "status_text": "Build failed: pip" if status == 3 else ""}
            return 200, "application/json", json.dumps(body).encode()
        return 404, "text/plain", b"not found"


def publish_props(app_tree: Path, server: RecordingServer, tmp_path: Path) -> dict:
    package = build_package(app_tree)
    return {"scm_url": server.url, "package_path": str(package.write(tmp_path / "build")),
            "package_sha256": package.sha256}


def fast_publisher() -> OneDeployPublisher:
    return OneDeployPublisher(token_source=lambda: "entra-token", poll_interval_s=0.01, deployment_timeout_s=5,
                              retry_window_s=5)


def test_publish_posts_the_package_with_a_bearer_token_and_waits_for_success(app_tree, tmp_path):
    with RecordingServer(FakeOneDeploy()) as server:
        result = fast_publisher().create(publish_props(app_tree, server, tmp_path))
    post = server.requests[0]
    assert (post.method, urlsplit(post.path).path) == ("POST", "/api/publish")
    assert parse_qs(urlsplit(post.path).query)["RemoteBuild"] == ["true"]
    assert post.headers["Authorization"] == "Bearer entra-token"
    assert post.headers["Content-Type"] == "application/zip"
    names = zip_names(post.body)
    assert {"function_app.py", "host.json", "requirements.txt"} <= names
    assert {name.split("/")[0] for name in names} >= {"shared", "functions", "tasks"}
    assert not {name.split("/")[0] for name in names} & {"tests", ".venv", "node_modules", "local.settings.json",
                                                          ".azurite"}
    assert [urlsplit(r.path).path for r in server.requests[1:]] == ["/api/deployments/dep-42"] * 2
    assert result.outs["deployment_id"] == "dep-42"


def test_publish_retries_while_new_role_assignments_apply(app_tree, tmp_path):
    fake = FakeOneDeploy(publish_failures=[(403, "Forbidden"), (400, "BlobUploadFailedException: 403")])
    with RecordingServer(fake) as server:
        fast_publisher().create(publish_props(app_tree, server, tmp_path))
    assert [r.method for r in server.requests].count("POST") == 3


def test_failed_deployment_is_an_error_that_points_at_the_build_log(app_tree, tmp_path):
    with RecordingServer(FakeOneDeploy(final_status=3)) as server:
        with pytest.raises(RuntimeError, match=r"dep-42 failed: Build failed: pip.*/api/deployments/dep-42/log"):
            fast_publisher().create(publish_props(app_tree, server, tmp_path))


def test_refused_package_is_an_error_with_the_endpoints_answer(app_tree, tmp_path):
    with RecordingServer(FakeOneDeploy(publish_failures=[(401, "token audience is invalid")])) as server:
        with pytest.raises(RuntimeError, match="answered 401: token audience is invalid"):
            fast_publisher().create(publish_props(app_tree, server, tmp_path))


def test_package_changed_after_preview_is_refused(app_tree, tmp_path):
    with RecordingServer(FakeOneDeploy()) as server:
        props = publish_props(app_tree, server, tmp_path)
        Path(props["package_path"]).write_bytes(b"something else")
        with pytest.raises(RuntimeError, match="changed after the preview"):
            fast_publisher().create(props)
    assert server.requests == []


def test_provider_loads_in_a_process_that_cannot_import_the_infra_package(tmp_path):
    """Pulumi runs dynamic providers from the pickled state, in a separate process."""
    pickled = serialize_provider(OneDeployPublisher())
    script = ("import base64, sys, dill\n"
              "import smallfirst_infra  # noqa: must fail here, or the test proves nothing\n")
    assert subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True).returncode != 0
    script = ("import base64, sys, dill\n"
              "provider = dill.loads(base64.b64decode(sys.argv[1]))\n"
              "diff = provider.diff('id', {'package_sha256': '1'}, {'package_sha256': '2'})\n"
              "print(type(provider).__name__, diff.changes)\n")
    result = subprocess.run([sys.executable, "-I", "-c", script, pickled], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OneDeployPublisher", "True"]
