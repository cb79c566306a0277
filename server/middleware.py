"""ASGI middleware: bearer-key authentication and the request body limit, answered in OpenAI's error shape."""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body

PUBLIC = ("/healthz",)  # and the page: "/" and "/static/..."


def _is_public(path: str) -> bool:
    return path in PUBLIC or path == "/" or path.startswith("/static/")


async def send_error(send: Send, status: int, message: str, code: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(message, status, code=code)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """Every endpoint but /healthz and the page needs `Authorization: Bearer KEY`. Browsers cannot set
    headers on a WebSocket, so the WebSocket also takes `?api_key=KEY`."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app, self.key = app, api_key.encode()

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        if given[:7].lower() == b"bearer " and hmac.compare_digest(given[7:].strip(), self.key):
            return True
        if scope["type"] == "websocket":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            token = (query.get("api_key") or [""])[0].encode()
            return bool(token) and hmac.compare_digest(token, self.key)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _is_public(scope["path"]) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API key"})
            return
        await send_error(send, 401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                         code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


class BodyLimit:
    """Requests whose body passes `limit` bytes get 413: at once from Content-Length, or while reading a
    chunked body (the endpoint then sees the error and answers 413)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        message = f"the request body is larger than the server's limit of {self.limit} bytes"
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await send_error(send, 413, message, code="too_large")
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, message)
            return msg

        await self.app(scope, limited, send)
