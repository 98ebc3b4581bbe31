"""The HTTP ceiling: a bare ASGI app on the same uvicorn settings, answering a constant.

Reads the request body (as every arm must) and answers the same bytes every
time: the V2 answer the model gives for the bench's check row, so the bench's
answer check passes. No JSON parsing, no model: what a Python server on one
core can do at best over HTTP. Run by ``bench/serving.py`` in the minimal
handler's venv::

    python bare.py ANSWER.json PORT
"""

from __future__ import annotations

import sys

import uvicorn

answer_path, port = sys.argv[1], int(sys.argv[2])
with open(answer_path, "rb") as f:
    ANSWER = f.read()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
BODY = {"type": "http.response.body", "body": ANSWER}


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(START)
    await send(BODY)


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
