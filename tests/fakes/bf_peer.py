"""A local Bot Framework peer for tests: OpenID metadata and keys, a token endpoint and a Bot Connector.

Everything listens on 127.0.0.1 on an ephemeral port, in its own thread and event loop: botbuilder fetches the
OpenID metadata and our credentials fetch tokens with blocking `requests` calls from the bot's event loop, so a
peer served from that same loop would never answer them.

The peer owns an RSA key; `mint()` signs Bot Framework style channel tokens with it (or with any other key, to
forge them). The connector records every call (JSON body, Authorization header) and counts the distinct TCP
connections it was reached on, which shows whether the bot's HTTP clients are kept alive and reused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"

_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(name: str = "peer") -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, generated once per test session per name."""
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[name]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """A token MACed with HS256 (e.g. keyed with the RSA public key: the classic algorithm-confusion forgery)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


@dataclass
class ConnectorCall:
    method: str
    path: str
    conversation_id: str | None
    activity_id: str | None
    body: Any
    authorization: str | None


@dataclass
class BfPeer:
    """Start with `with BfPeer() as peer:`; the URLs are valid while it runs."""

    kid: str = "peer-key-1"
    issuer: str = BOT_FRAMEWORK_ISSUER
    endorsements: tuple[str, ...] = ("msteams",)
    member_email: str = "fatima.ali@khm.uio.no"
    key: rsa.RSAPrivateKey = field(default_factory=rsa_key)
    # what the peer saw
    metadata_fetches: int = 0
    jwks_fetches: int = 0
    token_requests: list[dict[str, str]] = field(default_factory=list)
    calls: list[ConnectorCall] = field(default_factory=list)
    connector_connections: set[tuple[str, int]] = field(default_factory=set)
    # fault injection for delivery tests: every Nth activity POST answers 429; these conversations answer 403;
    # every activity POST takes `latency` seconds (a slow connector) while its client's port is in `in_flight`;
    # every activity POST answers `activity_status` when it is not 200 (a connector that is down: 502, 504)
    throttle_every: int = 0
    retry_after: str = "1"
    forbidden_conversations: set[str] = field(default_factory=set)
    activity_status: int = 200
    rejected: list[tuple[int, str | None]] = field(default_factory=list)
    latency: float = 0.0
    in_flight: set[int] = field(default_factory=set)
    # fault injection for the signing-key cache: the metadata document waits for this gate / answers this status
    metadata_gate: threading.Event | None = None
    metadata_status: int = 200
    metadata_requested: threading.Event = field(default_factory=threading.Event)
    metadata_answers: int = 0

    # files people send to the bot: a photo pasted into a chat (held by the connector, under /v3/attachments/) and
    # a file Teams uploaded (its own download URL, under /files/); what was asked for, with which Authorization
    files: dict[str, bytes] = field(default_factory=dict)
    file_requests: list[tuple[str, str | None]] = field(default_factory=list)

    # a team the bot is added to: its channels (id, name; the General channel has no name) and its members (id,
    # name, aadObjectId, email, userPrincipalName); with `chat_per_member` each personal chat the bot opens has an
    # id of its own ("a:" + the member's id) instead of the one "a:new"
    team_channels: list[dict[str, Any]] = field(default_factory=list)
    team_members: list[dict[str, Any]] = field(default_factory=list)
    chat_per_member: bool = False

    port: int = 0  # 0: an ephemeral port; a given one lets a test point a serviceUrl at a connector not yet up

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)

    # -- URLs ----------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def service_url(self) -> str:
        return f"{self.base_url}/"

    # -- tokens --------------------------------------------------------------------------------------------

    def jwk(self) -> dict[str, Any]:
        key = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**key, "kid": self.kid, "use": "sig", "alg": "RS256", "endorsements": list(self.endorsements)}

    def claims(self, app_id: str, service_url: str | None = None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": app_id, "serviceurl": service_url or self.service_url,
            "nbf": now - 60, "iat": now - 60, "exp": now + 3600, "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, app_id: str, *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None,
             service_url: str | None = None, **overrides: Any) -> str:
        """A channel-to-bot token; pass another key or kid to forge, or claim overrides (None drops a claim)."""
        return jwt.encode(self.claims(app_id, service_url, **overrides), key or self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid})

    # -- the server ----------------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/keys", self._jwks)
        app.router.add_post("/token", self._token)
        app.router.add_post("/v3/conversations", self._create_conversation)
        # any id in a path segment, braces too (aiohttp's plain {cid} would not match "{}" and answer 404)
        app.router.add_post("/v3/conversations/{cid:[^/]+}/activities", self._activity)
        app.router.add_post("/v3/conversations/{cid:[^/]+}/activities/{aid:[^/]+}", self._activity)
        app.router.add_put("/v3/conversations/{cid:[^/]+}/activities/{aid:[^/]+}", self._activity)
        app.router.add_get("/v3/conversations/{cid:[^/]+}/members/{uid:[^/]+}", self._member)
        app.router.add_get("/v3/conversations/{cid:[^/]+}/members", self._members)
        app.router.add_get("/v3/teams/{tid:[^/]+}/conversations", self._channels)
        app.router.add_get("/v3/attachments/{aid}/views/{view}", self._file)
        app.router.add_get("/files/{name}", self._file)
        return app

    async def _file(self, request: web.Request) -> web.Response:
        self.file_requests.append((request.path, request.headers.get("Authorization")))
        data = self.files.get(request.path)
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def _metadata(self, _request: web.Request) -> web.Response:
        self.metadata_fetches += 1
        self.metadata_requested.set()
        if self.metadata_gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.metadata_gate.wait, 30)
        self.metadata_answers += 1
        if self.metadata_status != 200:
            return web.json_response({"error": "unavailable"}, status=self.metadata_status)
        return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.base_url}/keys",
                                  "id_token_signing_alg_values_supported": ["RS256"],
                                  "token_endpoint_auth_methods_supported": ["private_key_jwt"]})

    async def _jwks(self, _request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [self.jwk()]})

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        return web.json_response({"access_token": f"peer-token-{len(self.token_requests)}",
                                  "expires_in": 3600, "token_type": "Bearer"})

    def _record(self, request: web.Request, body: Any) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.connector_connections.add((peer[0], peer[1]))
        self.calls.append(ConnectorCall(request.method, request.path, request.match_info.get("cid"),
                                        request.match_info.get("aid"), body,
                                        request.headers.get("Authorization")))

    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(request, body)
        members = body.get("members") or []
        chat = f"a:{members[0]['id']}" if self.chat_per_member and members else "a:new"
        return web.json_response({"id": chat, "activityId": f"sent-{next(self._ids)}"})

    async def _members(self, request: web.Request) -> web.Response:
        self._record(request, None)
        return web.json_response(self.team_members)

    async def _channels(self, request: web.Request) -> web.Response:
        self._record(request, None)
        return web.json_response({"conversations": self.team_channels})

    async def _activity(self, request: web.Request) -> web.Response:
        if not self.latency:
            return await self._answer_activity(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = peer[1] if peer else 0
        self.in_flight.add(port)
        try:
            await asyncio.sleep(self.latency)
            return await self._answer_activity(request)
        finally:
            self.in_flight.discard(port)

    async def _answer_activity(self, request: web.Request) -> web.Response:
        body = await request.json()
        cid = request.match_info.get("cid")
        self._posts = getattr(self, "_posts", 0) + 1
        if self.activity_status != 200:
            self.rejected.append((self.activity_status, cid))
            return web.json_response({"error": {"code": "ServiceError"}}, status=self.activity_status)
        if cid in self.forbidden_conversations:
            self.rejected.append((403, cid))
            return web.json_response({"error": {"code": "BotDisabledByAdmin"}}, status=403)
        if self.throttle_every and self._posts % self.throttle_every == 0:
            self.rejected.append((429, cid))
            return web.json_response({"error": {"code": "Throttled"}}, status=429,
                                     headers={"Retry-After": self.retry_after})
        self._record(request, body)
        return web.json_response({"id": f"sent-{next(self._ids)}"})

    async def _member(self, request: web.Request) -> web.Response:
        self._record(request, None)
        uid = request.match_info["uid"]
        return web.json_response({"id": uid, "name": "Test Person", "aadObjectId": str(uuid.uuid4()),
                                  "email": self.member_email, "userPrincipalName": self.member_email,
                                  "tenantId": None, "userRole": "user"})

    async def _start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def start(self) -> BfPeer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bf-peer", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> BfPeer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what the bot sent ---------------------------------------------------------------------------------

    def sent_activities(self) -> list[ConnectorCall]:
        """Activities the bot posted (replies and new messages), in order."""
        return [c for c in self.calls if c.method == "POST" and "/activities" in c.path]
