import asyncio
import sys
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))


@pytest.fixture(autouse=True, scope="module")
def main_thread_event_loop():
    """Each infra test module starts with an event loop in the main thread, as a fresh interpreter has: Pulumi's mocks
    take the current loop, and an asyncio.run in an earlier test module leaves none set."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        yield
        asyncio.set_event_loop(None)
        loop.close()
        return
    yield
