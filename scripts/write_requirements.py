"""Write requirements.txt (what Azure's Python build installs) from pyproject.toml's runtime dependencies.

Run after changing dependencies: python scripts/write_requirements.py. A test checks the two agree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = "# Generated from pyproject.toml by scripts/write_requirements.py; do not edit.\n"


def requirements() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return HEADER + "".join(f"{dep}\n" for dep in project["dependencies"])


if __name__ == "__main__":
    (REPO / "requirements.txt").write_text(requirements())
