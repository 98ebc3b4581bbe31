"""A closed-loop load generator in Python, for what wrk cannot drive (gRPC).

``python pyload.py MODE TARGET BODY CONNS SECONDS``: ``CONNS`` clients, each
sending its next request when the answer to the last one arrived, for
``SECONDS``; prints one ``BENCHJSON {...}`` line in wrk's fields (requests,
duration_us, p50_us, p99_us, max_us, errors).

* ``grpc``: ``TARGET`` is ``host:port``; ``BODY`` a serialized
  ``ModelInferRequest`` (inputs as ``raw_input_contents``, as tritonclient
  sends them); one grpc.aio channel per client.
* ``http``: ``TARGET`` is a URL; ``BODY`` the JSON body, POSTed over one
  keep-alive connection per client with plain asyncio streams, so the REST
  route is measured by the same kind of client as gRPC.

Run with mlcycle's interpreter (the gRPC stubs are mlcycle's generated ones).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit


async def grpc_client(target: str, body: bytes, until: float, lat: list[float]) -> int:
    import grpc

    from mlcycle.serve.proto import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest.FromString(body)
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        while (start := time.perf_counter()) < until:
            try:
                await infer(request)
            except grpc.RpcError:
                errors += 1
            lat.append(time.perf_counter() - start)
    return errors


async def http_client(url: str, body: bytes, until: float, lat: list[float]) -> int:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    request, errors = head + body, 0
    while (start := time.perf_counter()) < until:
        writer.write(request)
        status = await reader.readuntil(b"\r\n")
        length = 0
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        if b" 200 " not in status:
            errors += 1
        lat.append(time.perf_counter() - start)
    writer.close()
    return errors


async def main(mode: str, target: str, body_path: str, conns: int, seconds: float) -> None:
    with open(body_path, "rb") as f:
        body = f.read()
    client = grpc_client if mode == "grpc" else http_client
    lat: list[float] = []
    started = time.perf_counter()
    until = started + seconds
    errors = await asyncio.gather(*(client(target, body, until, lat) for _ in range(conns)))
    duration = time.perf_counter() - started
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    print(
        "BENCHJSON "
        + json.dumps(
            {
                "requests": len(lat),
                "duration_us": int(duration * 1e6),
                "p50_us": int(q[49] * 1e6),
                "p99_us": int(q[98] * 1e6),
                "max_us": int(lat[-1] * 1e6) if lat else 0,
                "connect": 0,
                "read": 0,
                "write": 0,
                "status": sum(errors),
                "timeout": 0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    mode, target, body_path, conns, seconds = sys.argv[1:6]
    asyncio.run(main(mode, target, body_path, int(conns), float(seconds)))
