"""The one rule for sending a bearer token over plain HTTP: only to this machine (a test's server), never across a
network. azure-core's `send_request(..., enforce_https=...)` takes the answer."""

from __future__ import annotations

from urllib.parse import urlparse

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(url: str) -> bool:
    return urlparse(url).hostname in LOOPBACK_HOSTS
