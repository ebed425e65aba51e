"""Every HTTP, blob, queue and timer function continues the trace its Functions host started for the invocation.

`@traced`, written just above a handler's `def`, runs the handler inside `shared.core.telemetry.continued_span`
with the invocation's `context.trace_context`. The worker passes a function its invocation Context when the
function has a parameter named `context` (azure-functions-python-worker, `FunctionInfo.is_context_required`), so the
wrapper adds one to the handler's signature, keyword-only and None by default: a host that passes no context (the
local host, localdev/host.py) calls the handler as before, and its span starts a new trace. azure.functions' own MCP
tool decorator gives its wrapper a `__signature__` the same way.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable, TypeVar

Handler = TypeVar("Handler", bound=Callable[..., Any])
SPAN = "smallfirst.invocation"


def _span(handler: Callable[..., Any], context: Any):
    from shared.core.telemetry import configure_telemetry, continued_span  # on first use: indexing stays light

    configure_telemetry(os.environ)  # once per worker: the first invocation's span is exported too
    return continued_span(SPAN, getattr(context, "trace_context", None),
                          {"smallfirst.function": handler.__name__})


def traced(handler: Handler) -> Handler:
    if inspect.iscoroutinefunction(handler):  # the worker runs coroutines on its loop, others on threads
        @functools.wraps(handler)
        async def run_async(*args: Any, context: Any = None, **kwargs: Any) -> Any:
            with _span(handler, context):
                return await handler(*args, **kwargs)

        wrapper: Any = run_async
    else:
        @functools.wraps(handler)
        def run(*args: Any, context: Any = None, **kwargs: Any) -> Any:
            with _span(handler, context):
                return handler(*args, **kwargs)

        wrapper = run
    signature = inspect.signature(handler)
    wrapper.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(), inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, default=None)])
    return wrapper
