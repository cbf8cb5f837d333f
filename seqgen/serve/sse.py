"""Server-sent events: `data: {json}\\n\\n` frames, `data: [DONE]\\n\\n` at the end, and a
streaming response that notices at once when the client hangs up.

Starlette's StreamingResponse (ASGI 2.4 servers) only learns of a disconnect when its
next write fails; a request still waiting for batch rows writes nothing, so it would hold
its place. `EventStream` listens for `http.disconnect` beside the stream and cancels it,
which runs the body's `finally` (where the request leaves the batch).
"""
from __future__ import annotations

import json

import anyio
from starlette.responses import StreamingResponse

DONE = "data: [DONE]\n\n"


def event(data: dict) -> str:
    return "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n\n"


class EventStream(StreamingResponse):
    """text/event-stream that stops streaming (cancelling its body) on disconnect."""

    media_type = "text/event-stream"

    def __init__(self, content):
        super().__init__(content, media_type=self.media_type,
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope, receive, send) -> None:
        async with anyio.create_task_group() as group:
            async def stream() -> None:
                try:
                    await self.stream_response(send)
                except OSError:                  # the client left mid-write
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
