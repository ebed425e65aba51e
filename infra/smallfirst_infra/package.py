"""The Functions code package: every file under the repository root that `.funcignore` leaves in, as one zip.

Whole directories are walked (no list of files), so new modules and sub-packages ship without a change here.
The zip is byte-for-byte reproducible (sorted entries, fixed timestamps), so its SHA-256 changes exactly when
a packaged file changes: that hash is what makes Pulumi re-publish.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# Local state that must never ship, whatever `.funcignore` says: environments, emulator data, local secrets.
ALWAYS_EXCLUDED = (".git", ".venv", "node_modules", ".azurite", "__pycache__", "*.pyc", ".pytest_cache",
                   ".python_packages", "*.egg-info", "local.settings.json")
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    negated: bool
    directory_only: bool
    anchored: bool

    @classmethod
    def parse(cls, line: str) -> "IgnoreRule | None":
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        negated = line.startswith("!")
        line = line.removeprefix("!")
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        # As in .gitignore: a slash anywhere but the end ties the pattern to the root.
        anchored = "/" in line
        return cls(line.lstrip("/"), negated, directory_only, anchored)

    def matches(self, path: PurePosixPath, is_dir: bool) -> bool:
        if self.directory_only and not is_dir:
            return False
        if self.anchored:
            return fnmatch.fnmatchcase(str(path), self.pattern)
        return fnmatch.fnmatchcase(path.name, self.pattern)


class FuncIgnore:
    """The subset of .gitignore syntax that `.funcignore` files use: globs, `dir/`, `/anchored`, `!negation`."""

    def __init__(self, lines: list[str]) -> None:
        self.forced = [rule for rule in map(IgnoreRule.parse, ALWAYS_EXCLUDED) if rule]
        self.rules = [rule for rule in map(IgnoreRule.parse, lines) if rule]

    @classmethod
    def of(cls, root: Path) -> "FuncIgnore":
        path = root / ".funcignore"
        return cls(path.read_text(encoding="utf-8").splitlines() if path.exists() else [])

    def ignored(self, path: PurePosixPath, is_dir: bool) -> bool:
        if any(rule.matches(path, is_dir) for rule in self.forced):
            return True
        ignored = False
        for rule in self.rules:  # the last matching rule wins
            if rule.matches(path, is_dir):
                ignored = not rule.negated
        return ignored


@dataclass(frozen=True)
class AppPackage:
    files: tuple[str, ...]
    zip_bytes: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.zip_bytes).hexdigest()

    def write(self, directory: Path) -> Path:
        """Writes the zip under its hash, so a path always names one exact package."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"app-{self.sha256[:16]}.zip"
        if not path.exists():
            path.write_bytes(self.zip_bytes)
        return path


def packaged_files(root: Path) -> list[str]:
    ignore = FuncIgnore.of(root)
    found: list[str] = []

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            relative = PurePosixPath(entry.relative_to(root).as_posix())
            if entry.is_symlink() or ignore.ignored(relative, entry.is_dir()):
                continue
            if entry.is_dir():
                walk(entry)
            else:
                found.append(str(relative))

    walk(root)
    return found


def build_package(root: Path) -> AppPackage:
    files = packaged_files(root)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())
    return AppPackage(tuple(files), buffer.getvalue())
