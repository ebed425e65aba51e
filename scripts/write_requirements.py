"""Lock requirements.txt, what Azure's remote build installs, from pyproject.toml's deployed dependencies.

    python scripts/write_requirements.py            lock again after changing [project].dependencies
    python scripts/write_requirements.py --upgrade  lock the newest versions the dependencies allow
    python scripts/write_requirements.py --check    exit 1 if requirements.txt is not what locking would write
    python scripts/write_requirements.py --constraints   print the locked versions without hashes (offline):
                                                    scripts/bootstrap.sh installs .venv under them, so local
                                                    runs and tests use the versions Azure runs

All three resolve with uv against PyPI (network). Locking keeps the versions already in requirements.txt where
they still satisfy pyproject.toml, so it changes only what it must; --check resolves the same way into a
temporary file and compares. The file has every package, direct and transitive, at one exact version with the
SHA-256 of each of its files on PyPI: pip (and uv) then install in hash-checking mode, so a build installs
exactly these files or fails. Flex Consumption's remote build is Oryx, which runs
`pip install --prefer-binary -r requirements.txt` (microsoft/Oryx, src/BuildScriptGenerator/Python/
PythonBashBuildSnippet.sh.tpl; https://learn.microsoft.com/azure/azure-functions/python-build-options: the
remote build installs what requirements.txt lists; checked 2026-12-06).

The header records a SHA-256 of the inputs (the dependency list, the target and HELD_BACK), which
tests/test_packaging.py recomputes offline on every run: a change to the dependencies without locking again
fails the suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements.txt"
# The Functions app's runtime: infra/smallfirst_infra/config.py's python_version (a test checks they agree), on
# Linux x86-64; manylinux_2_28 wheels run on the glibc of every Functions Linux image.
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
INDEX_URL = "https://pypi.org/simple"
# Deployed packages kept at versions the local-only extras also accept, so one .venv holds exactly the locked set.
HELD_BACK = {
    "protobuf<6": "pulumi-policy (dev) requires protobuf~=5.29.5; deployed, only onnxruntime and OTLP's protos need it",
}
DIGEST_PREFIX = "# inputs-sha256: "


def deployed_dependencies() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]


def inputs_digest(dependencies: list[str]) -> str:
    """What the lock is a function of, besides PyPI's contents on the day it was written."""
    inputs = {"dependencies": dependencies, "python": PYTHON_VERSION, "platform": PYTHON_PLATFORM,
              "held_back": sorted(HELD_BACK)}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def header(dependencies: list[str]) -> str:
    return (
        "# Generated from pyproject.toml's [project].dependencies by scripts/write_requirements.py; do not edit.\n"
        f"# What Azure's remote build installs: exact versions with hashes, for CPython {PYTHON_VERSION} on "
        f"{PYTHON_PLATFORM}.\n"
        f"# held_back.txt (HELD_BACK in the script): {', '.join(HELD_BACK)}.\n"
        f"{DIGEST_PREFIX}{inputs_digest(dependencies)}\n"
    )


def recorded_digest(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def pinned(text: str) -> list[str]:
    """The `name==version` lines of a lock, without hashes or comments."""
    return [line.split()[0] for line in text.splitlines() if line[:1].isalnum()]


def uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        sys.exit("write_requirements: uv is not installed (it is in the dev extra: bash scripts/bootstrap.sh --dev)")
    return find_uv_bin()


def lock(*, upgrade: bool = False) -> str:
    """requirements.txt's text as locking writes it now, preferring the versions it already pins."""
    # Run in a scratch folder holding copies of the inputs, so the annotations name them without a machine's path.
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(REPO / "pyproject.toml", Path(scratch) / "pyproject.toml")
        (Path(scratch) / "held_back.txt").write_text("".join(f"{line}\n" for line in HELD_BACK), encoding="utf-8")
        output = Path(scratch) / "requirements.txt"
        if REQUIREMENTS.exists() and not upgrade:
            shutil.copyfile(REQUIREMENTS, output)  # uv keeps an output file's pins where they still fit
        command = [
            uv(), "pip", "compile", "pyproject.toml", "--output-file", "requirements.txt", "--quiet", "--no-config",
            "--constraint", "held_back.txt",
            "--python-version", PYTHON_VERSION, "--python-platform", PYTHON_PLATFORM, "--index-url", INDEX_URL,
            "--generate-hashes", "--only-binary", ":all:", "--no-header",
            *(["--upgrade"] if upgrade else []),
        ]
        result = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"write_requirements: uv pip compile failed:\n{result.stderr.strip()}")
        return header(deployed_dependencies()) + output.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if requirements.txt is out of date")
    mode.add_argument("--upgrade", action="store_true", help="lock the newest allowed versions")
    mode.add_argument("--constraints", action="store_true", help="print the locked versions, without hashes")
    args = parser.parse_args(argv)
    if args.constraints:
        print("\n".join(pinned(REQUIREMENTS.read_text(encoding="utf-8"))))
        return 0
    text = lock(upgrade=args.upgrade)
    if args.check:
        current = REQUIREMENTS.read_text(encoding="utf-8") if REQUIREMENTS.exists() else ""
        if current != text:
            print("requirements.txt is out of date: run python scripts/write_requirements.py", file=sys.stderr)
            return 1
        print("requirements.txt is up to date")
        return 0
    REQUIREMENTS.write_text(text, encoding="utf-8")
    print(f"wrote {REQUIREMENTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
