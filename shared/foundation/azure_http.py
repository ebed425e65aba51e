"""What the command line's own calls through azure-core share (`review --app` to the app, `smoke`'s ARM call): when a
bearer token may go over plain HTTP, and how a reply body is read.

A bearer token goes over plain HTTP only to this machine (a test's server), never across a network: azure-core's
`send_request(..., enforce_https=...)` takes `not is_loopback(url)`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(url: str) -> bool:
    return urlparse(url).hostname in LOOPBACK_HOSTS


def json_object(body_text: str) -> dict[str, Any]:
    """A reply body's JSON object; {} for an empty body, a body that is not JSON, or JSON that is not an object (an
    error page or a proxy's reply), so a caller reads its fields with .get and reports what is missing."""
    try:
        body = json.loads(body_text or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
