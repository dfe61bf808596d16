"""The console's guard: the access token, the session cookie, CSRF tokens and security headers.

The token is accepted once as `?token=` on a GET, which starts a session: an HttpOnly,
SameSite=Strict cookie holding a random nonce and its HMAC under the token, so the cookie is
worthless without the server's token and the token itself never sits in the cookie. Every
request after that is authenticated by the cookie; anything else gets 401 and no data. Each
session has its own CSRF token (an HMAC of the nonce under the token, never stored) that every
form carries in a hidden field and every POST must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "SESSION_COOKIE", "Guard", "Keys"]

SESSION_COOKIE = "rg_console_session"

SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # "no-referrer" would make browsers send `Origin: null` on POSTs
    "cache-control": "no-store",
}
"""Sent with every response: nothing the agent wrote can run, load, frame or leak."""

_UNAUTHORIZED = (
    "<!doctype html><meta charset=utf-8><title>401 Unauthorized</title>"
    "<p>401 Unauthorized: open the console with the URL it printed at start-up (it ends in <code>?token=...</code>)."
)


class Keys:
    """The server's token and everything derived from it (sessions and CSRF tokens)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._key = hashlib.sha256(b"reliable-graph console|" + token.encode()).digest()

    def _mac(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}|{nonce}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, given: str) -> bool:
        """Whether `given` is the server's token (constant time)."""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def new_session(self) -> str:
        """A fresh session cookie value: `nonce.mac`."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac('session', nonce)}"

    def session_of(self, cookie: str | None) -> str | None:
        """The session's nonce if `cookie` is a session this server issued, else None."""
        if not cookie or "." not in cookie:
            return None
        nonce, _, mac = cookie.partition(".")
        return nonce if hmac.compare_digest(mac.encode(), self._mac("session", nonce).encode()) else None

    def csrf(self, session: str) -> str:
        """The CSRF token of `session` (what every form carries)."""
        return self._mac("csrf", session)

    def csrf_ok(self, session: str, given: str | None) -> bool:
        """Whether `given` is the CSRF token of `session` (constant time)."""
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf(session).encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (the `Origin` header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser form, or an old browser: the CSRF token still decides
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                if name not in headers:
                    headers[name] = value
        await send(message)

    return wrapped


class Guard:
    """ASGI middleware: security headers on every response, and no route without the token."""

    def __init__(self, app: ASGIApp, *, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        request = Request(scope)
        response: Response | None = None
        given = request.query_params.get("token")
        if given is not None and not self.keys.token_ok(given):
            response = HTMLResponse(_UNAUTHORIZED, status_code=401)
        elif given is not None and request.method in ("GET", "HEAD"):
            # exchange the token for a session, and take it out of the address bar and history
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            location = request.url.path + (f"?{rest}" if rest else "")
            response = RedirectResponse(location, status_code=303)
            response.set_cookie(
                SESSION_COOKIE,
                self.keys.new_session(),
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path=scope.get("root_path", "") or "/",
            )
        else:
            session = self.keys.session_of(request.cookies.get(SESSION_COOKIE))
            if session is None:
                response = HTMLResponse(_UNAUTHORIZED, status_code=401)
            else:
                scope.setdefault("state", {})["session"] = session
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
