"""Load on `sonorant serve`: requests/s, latency percentiles and first-audio latency under N concurrent
streams (POST /v1/audio/speech, WAV, read as it streams), from clients on loopback.

Every client sends its requests one after the other; N clients run at once. A request counts as served
(200, its whole audio read), busy (503) or failed (anything else, or a timeout). Against a server given by
`url`, or one started here on 127.0.0.1 with the given model.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

SENTENCES = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish."]


@dataclass
class LoadLevel:
    concurrency: int
    requests: int
    served: int
    busy: int  # 503
    failed: int
    wall_s: float
    requests_per_s: float  # served per second of wall time
    audio_x_realtime: float  # seconds of audio served per second of wall time
    latency_p50_s: float  # request sent -> last byte, served requests
    latency_p90_s: float
    latency_p99_s: float
    first_audio_p50_s: float  # request sent -> first audio bytes
    first_audio_p90_s: float
    first_audio_max_s: float


@dataclass
class _Result:
    status: int
    first_s: float
    total_s: float
    audio_s: float


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _request(host: str, port: int, body: bytes, headers: dict, timeout: float) -> _Result:
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", "/v1/audio/speech", body=body, headers=headers)
        response = connection.getresponse()
        first = response.read1(65536) if response.status == 200 else b""
        first_s = time.perf_counter() - start
        rest = response.read()
        total_s = time.perf_counter() - start
        rate = int(response.getheader("X-Sample-Rate") or 16000)
        audio_s = max(0, len(first) + len(rest) - 44) / 2 / rate if response.status == 200 else 0.0
        return _Result(response.status, first_s, total_s, audio_s)
    except (OSError, http.client.HTTPException):
        return _Result(0, float("nan"), time.perf_counter() - start, 0.0)
    finally:
        connection.close()


def run_level(host: str, port: int, concurrency: int, requests_per_client: int, api_key: str | None = None,
              timeout: float = 300.0, seed: int = 0) -> LoadLevel:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    def client(number: int) -> list[_Result]:
        out = []
        for i in range(requests_per_client):
            text = SENTENCES[(number + i) % len(SENTENCES)]
            body = json.dumps({"model": "sonorant", "input": text, "response_format": "wav",
                               "seed": seed + number * requests_per_client + i}).encode()
            out.append(_request(host, port, body, headers, timeout))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for batch in pool.map(client, range(concurrency)) for r in batch]
    wall = time.perf_counter() - start
    served = [r for r in results if r.status == 200]
    latency, first = [r.total_s for r in served], [r.first_s for r in served]
    return LoadLevel(concurrency, len(results), len(served), sum(r.status == 503 for r in results),
                     sum(r.status not in (200, 503) for r in results), wall, len(served) / wall,
                     sum(r.audio_s for r in served) / wall, _percentile(latency, 0.5), _percentile(latency, 0.9),
                     _percentile(latency, 0.99), _percentile(first, 0.5), _percentile(first, 0.9),
                     max(first, default=float("nan")))


def bench_serve(url: str | None = None, model: str | None = None, levels: tuple[int, ...] = (1, 4, 16),
                requests_per_client: int = 4, max_concurrent: int = 2, max_queue: int = 16,
                api_key: str | None = None, device: str = "cpu") -> list[LoadLevel]:
    """One LoadLevel per concurrency in `levels`, after one warm-up request."""
    if url is not None:
        parts = urlsplit(url)
        return _levels(parts.hostname or "127.0.0.1", parts.port or 80, levels, requests_per_client, api_key)
    import uvicorn

    from ..server import ServerConfig, create_app

    config = ServerConfig(model=model, device=device, max_concurrent=max_concurrent, max_queue=max_queue,
                          queue_timeout_s=600.0)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        return _levels("127.0.0.1", server.servers[0].sockets[0].getsockname()[1], levels, requests_per_client,
                       api_key)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def _levels(host: str, port: int, levels: tuple[int, ...], requests_per_client: int,
            api_key: str | None) -> list[LoadLevel]:
    run_level(host, port, 1, 1, api_key)  # warm-up: voices encoded, caches allocated
    return [run_level(host, port, n, requests_per_client, api_key) for n in levels]


def load_table(rows: list[LoadLevel]) -> str:
    lines = ["| streams | served / 503 / failed | requests/s | audio x real time | latency p50 / p90 / p99 (s) "
             "| first audio p50 / p90 / max (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.concurrency} | {r.served} / {r.busy} / {r.failed} | {r.requests_per_s:.2f} | "
                     f"{r.audio_x_realtime:.2f} | {r.latency_p50_s:.2f} / {r.latency_p90_s:.2f} / "
                     f"{r.latency_p99_s:.2f} | {r.first_audio_p50_s:.2f} / {r.first_audio_p90_s:.2f} / "
                     f"{r.first_audio_max_s:.2f} |")
    return "\n".join(lines)
