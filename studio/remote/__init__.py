"""The client of `studio serve` (async, aiohttp): what the window uses instead of its own engine thread
when the engine runs on another machine.

No Qt and no torch here: it runs on any asyncio loop (the window's is qasync's), and importing it stays
light. `client` holds the API, `sse` the event-stream parser it reads job events with.
"""

from studio.remote.client import (
    TERMINAL_KINDS,
    ConnectionLost,
    JobInfo,
    QueueFull,
    RemoteClient,
    RemoteError,
    RemoteEvent,
    RemoteImage,
    RemoteModel,
    Unauthorized,
    check_server,
    normalize_url,
)

__all__ = [
    "TERMINAL_KINDS",
    "ConnectionLost",
    "JobInfo",
    "QueueFull",
    "RemoteClient",
    "RemoteError",
    "RemoteEvent",
    "RemoteImage",
    "RemoteModel",
    "Unauthorized",
    "check_server",
    "normalize_url",
]
