"""The request gate in front of `audio-agent mcp --http`: the same rules as `serve`'s WebSocket.

A web page in the designer's browser can reach loopback too, so every request is checked before
the MCP app sees it: the Host must be a loopback name or the bound address (DNS rebinding), an
Origin, when sent, must be a localhost page, and with a token the request must carry
``Authorization: Bearer <token>``. The checks themselves are the WebSocket transport's.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.protocol import tokens_match
from server.websocket import host_allowed, origin_allowed


def refusal(headers: list[tuple[bytes, bytes]], *, host: str, token: str | None) -> str | None:
    """Why a request with ``headers`` is refused, or None when it may pass."""
    values: dict[bytes, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value.decode("latin-1"))
    hosts = values.get(b"host", [])
    if len(hosts) != 1 or not host_allowed(hosts[0], bound_host=host):
        return "Host header not allowed"
    origins = values.get(b"origin", [])
    if len(origins) > 1 or not origin_allowed(origins[0] if origins else None):
        return "Origin not allowed"
    if token:
        authorization = values.get(b"authorization", [])
        given = authorization[0] if len(authorization) == 1 else ""
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not tokens_match(credential.strip(), token):
            return "missing or wrong bearer token"
    return None


def guarded_app(app: ASGIApp, *, host: str, token: str | None) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reason = refusal(list(scope.get("headers", [])), host=host, token=token)
            if reason is not None:
                status = 401 if reason.startswith("missing") else 403
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": (reason + "\n").encode()})
                return
        await app(scope, receive, send)

    return guarded
