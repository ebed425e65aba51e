"""Claims: at most one live worker on a unit of work, so no item is sent to a model twice.

A claim is a small blob created only if absent (If-None-Match: *). Its holder renews it every third of its
time to live while it works (a heartbeat, each renewal conditional on the holder's own etag), and deletes
it when done. A worker that dies leaves a claim that stops being renewed; once expired, the next worker
takes it over with a write conditional on the expired claim's etag, so two cannot both take it. A worker
that finds a live claim raises ClaimHeldError with the seconds until it would expire.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from shared.errors import ClaimHeldError, WriteConflict
from shared.pipeline.storage import BlobState, BlobStore

log = logging.getLogger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class Claim:
    """A context manager holding the claim blob `container/name` for `ttl_s` seconds at a time."""

    def __init__(self, store: BlobStore, container: str, name: str, ttl_s: float) -> None:
        self.store, self.container, self.name, self.ttl_s = store, container, name, ttl_s
        self.owner = f"{WORKER_ID}:{uuid.uuid4().hex[:8]}"
        self._state: BlobState | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost = False  # a renewal failed: someone took the claim over, so our results must not be written

    def _write(self, replacing: BlobState | None, only_if_absent: bool) -> None:
        body = json.dumps({"owner": self.owner, "expires_at": time.time() + self.ttl_s})
        etag = self.store.write(self.container, self.name, body, content_type="application/json",
                                metadata={"owner": self.owner}, replacing=replacing, only_if_absent=only_if_absent)
        self._state = BlobState(etag, {"owner": self.owner})

    def acquire(self) -> None:
        existing = None
        for _ in range(3):  # a claim released between our create and our read: create again
            try:
                self._write(None, only_if_absent=True)
                return
            except WriteConflict:
                existing = self.store.state(self.container, self.name)
                if existing is not None:
                    break
        if existing is None:
            raise ClaimHeldError(f"{self.name} keeps changing hands", retry_after=1.0)
        try:
            held = json.loads(self.store.read(self.container, self.name, etag=existing.etag))
        except (WriteConflict, ValueError):
            raise ClaimHeldError(f"{self.name} is changing hands", retry_after=1.0) from None
        remaining = float(held.get("expires_at", 0)) - time.time()
        if remaining > 0:
            raise ClaimHeldError(f"{self.name} is held by {held.get('owner')} for {remaining:.0f}s more", remaining)
        try:
            self._write(existing, only_if_absent=False)
        except WriteConflict:
            raise ClaimHeldError(f"{self.name} was taken over by another worker", retry_after=1.0) from None
        log.warning("took over expired claim %s from %s", self.name, held.get("owner"))

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self._write(self._state, only_if_absent=False)
            except WriteConflict:
                self.lost = True
                log.error("lost claim %s: another worker took it over", self.name)
                return
            except Exception:  # a storage hiccup: the next beat tries again, within the time to live
                log.warning("renewing claim %s failed", self.name, exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if not self.lost and self._state is not None:
            self.store.delete(self.container, self.name, self._state)

    def __enter__(self) -> "Claim":
        self.acquire()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True, name=f"claim {self.name}")
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
