"""The mock Bot Connector the benchmark's targets talk to, on 127.0.0.1: Bot Framework's identity (OpenID
metadata, JWKS, a token endpoint), the activities endpoint, the member lookup Teams answers, and, for the soak,
a proactive side that throttles like Teams (latency, 429 with Retry-After, some 502/504).

Replies to the benchmark's own activities (the path names one of their ids) are checked and counted, and kept
by the id they answer when the load generator needs them (the mixed workload reads the card the bot sent).
Anything else posted to a conversation (proactive messages from our bot's scheduler) is counted per
conversation, so the soak can tell that every prompt arrived exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bench._common import LOOPBACK

ID_PREFIX = "bench-"  # every activity the load generator sends has an id starting with this


@dataclass
class Tally:
    """What the connector received during one phase."""

    replies: int = 0
    expected: int = 0  # replies that passed the target's check
    other: int = 0  # well-formed replies that are not the expected answer (e.g. a welcome card)
    proactive: int = 0  # messages not in reply to an activity (our bot's scheduler); reported, not checked
    member_lookups: int = 0  # GET .../members/{id}: the bot asking Teams who a user is
    unexpected_calls: list[str] = field(default_factory=list)
    other_samples: list[str] = field(default_factory=list)  # the first few unexpected replies, for the report
    peers: set[Any] = field(default_factory=set)  # distinct TCP connections the target reached the connector on


@dataclass
class Throttle:
    """How the connector answers proactive messages (not replies to a turn), like Teams under load: every
    request waits `latency` seconds; a seeded share is refused with 429 and Retry-After, or with 502/504."""

    latency: float = 0.25
    share_429: float = 0.05
    retry_after: float = 1.0
    share_502: float = 0.01
    share_504: float = 0.01
    seed: int = 7
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def verdict(self) -> int:
        r = self.rng.random()
        if r < self.share_429:
            return 429
        if r < self.share_429 + self.share_502:
            return 502
        if r < self.share_429 + self.share_502 + self.share_504:
            return 504
        return 200


@dataclass
class Deliveries:
    """Proactive messages the connector accepted, per conversation, and the refusals it answered."""

    accepted: Counter[str] = field(default_factory=Counter)
    accepted_at: dict[str, list[float]] = field(default_factory=dict)  # monotonic seconds, per conversation
    refused: Counter[int] = field(default_factory=Counter)


class Identity:
    """Bot Framework's side of authentication, on loopback: an RSA key published as OpenID metadata + JWKS by the
    mock connector, one channel-to-bot token minted for the whole run, and a token endpoint for the bot's
    outbound calls. Used by the authenticated targets (the production path: every request's token validated)."""

    APP_ID = "00000000-0000-4000-8000-00000000b0b0"
    TENANT = "bench-tenant"
    ISSUER = "https://api.botframework.com"
    KID = "bench-key"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.token = ""

    def jwk(self) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": self.KID, "use": "sig", "alg": "RS256", "endorsements": ["msteams"]}

    def mint(self, service_url: str) -> str:
        import jwt

        now = int(time.time())
        self.token = jwt.encode({"iss": self.ISSUER, "aud": self.APP_ID, "serviceurl": service_url,
                                 "nbf": now - 60, "iat": now - 60, "exp": now + 3 * 3600},
                                self.key, algorithm="RS256", headers={"kid": self.KID})
        return self.token

    @classmethod
    def env(cls, base_url: str) -> dict[str, str]:
        return {"MicrosoftAppId": cls.APP_ID, "MicrosoftAppPassword": "bench-secret",
                "MicrosoftAppTenantId": cls.TENANT, "HMS_HOST": LOOPBACK,
                "HMS_OPENID_METADATA_URL": f"{base_url}/.well-known/openidconfiguration",
                "HMS_TOKEN_ISSUER": cls.ISSUER, "HMS_TOKEN_ENDPOINT": f"{base_url}/token"}


class MockConnector:
    """POST /v3/conversations/{id}/activities[/{replyTo}] -> {"id": ...}; GET /v3/conversations/{id}/members/{user}
    -> the user's Teams profile from `directory`; anything else is recorded as unexpected."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.identity = Identity()
        self.check: Callable[[dict[str, Any]], bool] = lambda _body: True
        self.directory: dict[str, dict[str, Any]] = {}  # Teams user id -> profile (the mixed workload's people)
        self.keep_replies = False
        self.replies: dict[str, list[dict[str, Any]]] = {}  # activity id -> the replies to it (keep_replies)
        self.throttle: Throttle | None = None
        self.deliveries = Deliveries()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def phase(self, check: Callable[[dict[str, Any]], bool]) -> Tally:
        self.tally = Tally()
        self.check = check
        self.replies = {}
        return self.tally

    async def _activity(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            self.tally.unexpected_calls.append(f"{request.method} {request.path} (bad JSON)")
            return web.json_response({"error": "bad json"}, status=400)
        self.tally.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        reply_to = request.match_info.get("reply_to", "")
        if not reply_to.startswith(ID_PREFIX):
            return await self._proactive(request.match_info["conversation"])
        self.tally.replies += 1
        if self.keep_replies:
            self.replies.setdefault(reply_to, []).append(body)
        if self.check(body):
            self.tally.expected += 1
        else:
            self.tally.other += 1
            if len(self.tally.other_samples) < 3:
                self.tally.other_samples.append(f"{request.path}: {json.dumps(body, ensure_ascii=False)[:400]}")
        return web.json_response({"id": f"mock-{next(self._ids)}"})

    async def _proactive(self, conversation: str) -> web.Response:
        self.tally.proactive += 1
        throttle = self.throttle  # the soak may end (and unset it) while this request waits
        if throttle is not None:
            await asyncio.sleep(throttle.latency)
            status = throttle.verdict()
            if status != 200:
                self.deliveries.refused[status] += 1
                headers = {"Retry-After": f"{throttle.retry_after:g}"} if status == 429 else None
                return web.json_response({"error": {"code": "throttled" if status == 429 else "upstream"}},
                                         status=status, headers=headers)
        self.deliveries.accepted[conversation] += 1
        self.deliveries.accepted_at.setdefault(conversation, []).append(time.monotonic())
        return web.json_response({"id": f"mock-{next(self._ids)}"})

    async def _member(self, request: web.Request) -> web.Response:
        """Teams' member lookup: the profile with e-mail and UPN, which is how the bot knows people whose Entra
        object id is not in the organisation file."""
        self.tally.member_lookups += 1
        profile = self.directory.get(request.match_info["member"])
        if profile is None:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        return web.json_response(profile)

    async def _metadata(self, _request: web.Request) -> web.Response:
        return web.json_response({"issuer": Identity.ISSUER, "jwks_uri": f"{self.url}/keys",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _keys(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.identity.jwk()]})

    async def _token(self, _request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench-outbound-token", "expires_in": 3600,
                                  "token_type": "Bearer"})

    async def _anything_else(self, request: web.Request) -> web.Response:
        self.tally.unexpected_calls.append(f"{request.method} {request.path}")
        return web.json_response({"error": "not mocked"}, status=404)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._activity)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", self._activity)
        app.router.add_get("/v3/conversations/{conversation}/members/{member}", self._member)
        app.router.add_get("/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/keys", self._keys)
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._anything_else)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{LOOPBACK}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
