"""Prometheus metrics of one app (its own registry, so several apps in one process never clash)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RTF_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("sonorant_requests", "Requests answered, by endpoint and HTTP status",
                                ["endpoint", "status"], registry=r)
        self.real_time_factor = Histogram("sonorant_real_time_factor", "Synthesis time / audio duration per "
                                          "request", buckets=RTF_BUCKETS, registry=r)
        self.first_audio = Histogram("sonorant_first_audio_seconds", "From the request's arrival to its first "
                                     "audio bytes", buckets=LATENCY_BUCKETS, registry=r)
        self.audio_seconds = Counter("sonorant_audio_seconds", "Seconds of audio generated", registry=r)
        self.queue_depth = Gauge("sonorant_queue_depth", "Requests waiting for a synthesis slot", registry=r)
        self.active = Gauge("sonorant_active_syntheses", "Syntheses running now", registry=r)

    def slots_changed(self, active: int, waiting: int) -> None:
        self.active.set(active)
        self.queue_depth.set(waiting)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestCounter:
    """ASGI middleware: counts every HTTP answer by route template (not raw path) and status; a WebSocket
    session counts once, as 101 when accepted or the close code when refused."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def counted(message: Message) -> None:
            kind = message["type"]
            if not status and kind == "http.response.start":
                status.append(message["status"])
            elif not status and kind == "websocket.accept":
                status.append(101)
            elif not status and kind == "websocket.close":
                status.append(message.get("code", 1000))
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static") else "other")
            self.metrics.requests.labels(endpoint, str(status[0] if status else 500)).inc()
