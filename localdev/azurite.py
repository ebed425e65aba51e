"""Start and stop the Azurite storage emulator installed under node_modules/ (npm install)."""

from __future__ import annotations

import errno
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Azurite's own defaults, which `UseDevelopmentStorage=true` points at.
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}


class AzuriteError(RuntimeError):
    """Azurite is not installed, exited, or did not start listening; the message says where its log is."""


class PortInUseError(RuntimeError):
    """A fixed port something here needs is taken by another process."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_port_free(port: int, what: str, option: str | None = None) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            hint = f", or pass {option} with another port" if option else ""
            raise PortInUseError(f"port {port} ({what}) is already in use: stop the process that holds it "
                                 f"(`ss -ltnp 'sport = :{port}'` shows it){hint}") from None


class Azurite:
    """One Azurite process (blob + queue) with its own data folder; a context manager.

    Free ports by default (tests run many side by side); `fixed_ports` takes Azurite's defaults instead, so
    `UseDevelopmentStorage=true` reaches it from other tools.
    """

    def __init__(self, location: Path | None = None, fixed_ports: bool = False) -> None:
        if fixed_ports:
            for service, port in DEFAULT_PORTS.items():
                ensure_port_free(port, f"Azurite's {service} service")
            self.blob_port, self.queue_port, self.table_port = DEFAULT_PORTS.values()
        else:
            self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self._own_location = location is None
        self.location = location or Path(tempfile.mkdtemp(prefix="azurite-"))
        self.log_path = self.location.parent / f"{self.location.name}.log"  # outlives the data folder
        self._process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
        )

    def start(self, timeout_s: float = 30.0) -> "Azurite":
        binary = REPO / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise AzuriteError(f"{binary} is missing: run bash scripts/bootstrap.sh (it installs Azurite with npm)")
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(binary), "--silent", "--skipApiVersionCheck", "--loose", "--location", str(self.location),
                 "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
                 "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
                 "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AzuriteError(f"Azurite exited at start ({self._last_log_line()}); its log: {self.log_path}")
            if all(self._listening(port) for port in (self.blob_port, self.queue_port)):
                return self
            time.sleep(0.1)
        self.stop(keep_log=True)
        raise AzuriteError(f"Azurite did not start listening within {timeout_s:.0f}s; its log: {self.log_path}")

    def _last_log_line(self) -> str:
        lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:200] if lines else "no output"

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def stop(self, keep_log: bool = False) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._own_location:
            shutil.rmtree(self.location, ignore_errors=True)
            if not keep_log:
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
