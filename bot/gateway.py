"""The Bot Framework gateway: the only module that imports botbuilder / botframework.

Everything else speaks plain dicts (the activity JSON as Teams sends it) through the `Turn` port and the
`TeamsGateway` methods, so moving to the Microsoft 365 Agents SDK later replaces this one file.

It also holds our fixes for the final, archived botbuilder-python release (4.17.1):
- `CloudAdapter.process()` answers HTTP 500 to every invoke that returns a body (it serializes an already
  serialized dict: "'dict' object has no attribute 'is_xml_model'"). We authenticate with the adapter's
  BotFrameworkAuthentication, run the turn ourselves and serialize the invoke response correctly.
- `process_activity()` deserializes the whole activity into msrest models and builds a TurnContext for every
  turn; here the context is built only when a turn needs a botbuilder operation (`Turn.context`).
- `TeamsInfo.send_message_to_teams_channel` and `create_conversation` need a non-empty bot app id even when
  auth is off: in local mode we pass the emulator's bot id.
- Per turn, the stock path builds a new connector client, credentials, token client and HTTP session. Here
  connector clients are pooled per (service URL, audience), their HTTP sessions kept alive, and tokens
  cached until shortly before they expire.
- Token validation errors that are not PermissionError (expired signature, bad endorsement) escape as 500
  in the stock path; here every authentication failure is a 401.
- The signing-key cache (`_OpenIdMetadata`) downloads Bot Framework's keys with blocking `requests` calls
  without a timeout, on the event loop, once a day: one slow answer from login.botframework.com stalls every
  conversation, and a hanging one stalls them for good. It also parses the key on every request. Our
  `_SigningKeys` downloads in a worker thread with a timeout, once for all waiting turns, keeps serving the
  keys it has when a refresh fails, and parses each key once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import requests
from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationParameters,
)
from botbuilder.schema.teams import ChannelInfo, TeamsChannelData, TenantInfo
from botframework.connector import Channels
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    BotFrameworkAuthenticationFactory,
    ClaimsIdentity,
    ConnectorFactory,
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
    ServiceClientCredentialsFactory,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor, _OpenIdConfig, _OpenIdMetadata
from jwt.algorithms import RSAAlgorithm
from msrest.authentication import Authentication

from usecases.ports import Coordinates, DeliveryError, FileTooLarge

log = logging.getLogger("hms.gateway")

BOT_FRAMEWORK_SCOPE = "https://api.botframework.com"


class Unauthorized(Exception):
    """The request's token is missing, forged, expired or for another bot."""


@dataclass(frozen=True)
class GatewayConfig:
    """What the gateway needs; built by the composition root from validated settings."""

    app_id: str = ""
    app_password: str = ""
    app_type: str = "SingleTenant"
    tenant_id: str = ""
    dev_bot_id: str = ""
    openid_metadata_url: str | None = None
    token_issuer: str | None = None
    token_endpoint: str | None = None

    @property
    def auth_enabled(self) -> bool:
        return bool(self.app_id)

    @property
    def bot_id(self) -> str:
        """The bot id to use for proactive calls: the app id, or in local mode the emulator's bot id."""
        return self.app_id or self.dev_bot_id or "hms-bot-local"


# -- tokens ------------------------------------------------------------------------------------------------


class CachedClientCredentials(Authentication):  # type: ignore[misc]
    """Client-credentials tokens for outbound calls, fetched once and reused until 5 minutes before expiry."""

    def __init__(self, app_id: str, password: str, token_endpoint: str, scope: str):
        self.app_id = app_id
        self._password = password
        self.token_endpoint = token_endpoint
        self.scope = scope
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetches = 0
        # botbuilder reads these attributes on credentials objects
        self.microsoft_app_id = app_id
        self.oauth_scope = scope

    def get_access_token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or not self._token or time.monotonic() > self._expires:
                scope = self.scope if self.scope.endswith("/.default") else f"{self.scope}/.default"
                response = requests.post(self.token_endpoint, timeout=10, data={
                    "grant_type": "client_credentials", "client_id": self.app_id,
                    "client_secret": self._password, "scope": scope,
                })
                if response.status_code != 200:
                    raise DeliveryError(response.status_code, "token endpoint refused the app credentials")
                body = response.json()
                self._token = str(body["access_token"])
                self._expires = time.monotonic() + max(60, int(body.get("expires_in", 3600)) - 300)
                self.fetches += 1
            return self._token

    async def token(self) -> str:
        """The cached token, fetched in a worker thread when it is missing or about to expire."""
        if self._token and time.monotonic() <= self._expires:
            return self._token
        return await asyncio.to_thread(self.get_access_token)

    def signed_session(self, session: requests.Session | None = None) -> requests.Session:
        session = session or requests.Session()
        session.headers["Authorization"] = f"Bearer {self.get_access_token()}"
        return session


class _CredentialFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    """One credentials object per audience, shared by every connector client."""

    def __init__(self, cfg: GatewayConfig):
        self._cfg = cfg
        self._inner = PasswordServiceClientCredentialFactory(cfg.app_id or None, cfg.app_password or None,
                                                             cfg.tenant_id or None)
        self._cache: dict[str, Authentication] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self._cfg.app_id) and app_id == self._cfg.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self._cfg.app_id

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Authentication:
        if not self._cfg.app_id:
            return MicrosoftAppCredentials.empty()
        if app_id != self._cfg.app_id:
            raise Unauthorized("credentials asked for another app id")
        creds = self.for_scope(oauth_scope)
        assert creds is not None  # the app id is set
        return creds


    def for_scope(self, scope: str | None) -> CachedClientCredentials | None:
        """The app's credentials for an audience, or None when auth is off (local mode)."""
        if not self._cfg.app_id:
            return None
        scope = scope or BOT_FRAMEWORK_SCOPE
        creds = self._cache.get(scope)
        if creds is None:
            creds = CachedClientCredentials(self._cfg.app_id, self._cfg.app_password, token_endpoint(self._cfg),
                                            scope)
            self._cache[scope] = creds
        return creds  # type: ignore[return-value]


def token_endpoint(cfg: GatewayConfig) -> str:
    """Where app tokens come from: the configured endpoint, the app's tenant, or botframework.com."""
    if cfg.token_endpoint:
        return cfg.token_endpoint
    tenant = cfg.tenant_id if cfg.app_type == "SingleTenant" and cfg.tenant_id else "botframework.com"
    return f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"


# -- signing keys ---------------------------------------------------------------------------------------------


class _SigningKeys(_OpenIdMetadata):  # type: ignore[misc]
    """Bot Framework's signing keys for one OpenID metadata URL: botbuilder's cache, without its defects (see the
    module docstring). Refreshed once a day, and at most once an hour when a token names an unknown key."""

    keys: list[dict[str, Any]]
    fetch_timeout = 10.0  # seconds per download
    max_age = 24 * 3600.0
    unknown_key_refresh = 3600.0
    retry_after_failure = 300.0

    def __init__(self, url: str):
        super().__init__(url)
        self._parsed: dict[str, _OpenIdConfig] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._fetched = -float("inf")  # time.monotonic() of the keys we hold

    def _older_than(self, seconds: float) -> bool:
        return time.monotonic() - self._fetched > seconds

    async def get(self, key_id: str) -> _OpenIdConfig:
        if self._older_than(self.max_age):
            await self._refresh()
        key = self._find(key_id)
        if key is None and self._older_than(self.unknown_key_refresh):
            await self._refresh()
            key = self._find(key_id)
        if key is None:
            raise PermissionError("the token is signed with a key Bot Framework does not publish")
        return key

    async def _refresh(self) -> None:
        task = self._refreshing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._refreshing = asyncio.get_running_loop().create_task(self._fetch())
        await task  # every turn that needs fresh keys waits for the same download

    async def _fetch(self) -> None:
        try:
            keys = await asyncio.to_thread(self._download)
        except Exception as exc:
            if not self.keys:
                raise
            log.warning("could not refresh Bot Framework's signing keys (%s); keeping the ones fetched %.0f min ago",
                        type(exc).__name__, (time.monotonic() - self._fetched) / 60)
            self._fetched = time.monotonic() - self.max_age + self.retry_after_failure
            return
        self.keys, self._parsed, self._fetched = keys, {}, time.monotonic()

    def _download(self) -> list[dict[str, Any]]:
        response = requests.get(self.url, timeout=self.fetch_timeout)
        response.raise_for_status()
        keys = requests.get(response.json()["jwks_uri"], timeout=self.fetch_timeout)
        keys.raise_for_status()
        return list(keys.json()["keys"])

    def _find(self, key_id: str) -> _OpenIdConfig | None:
        found = self._parsed.get(key_id)
        if found is None:
            key = next((k for k in self.keys if k.get("kid") == key_id), None)
            if key is None:
                return None
            found = self._parsed[key_id] = _OpenIdConfig(RSAAlgorithm.from_jwk(json.dumps(key)),
                                                         key.get("endorsements", []))
        return found


def _signing_keys(metadata_url: str) -> _SigningKeys:
    found = JwtTokenExtractor.metadataCache.get(metadata_url)
    if not isinstance(found, _SigningKeys):
        found = JwtTokenExtractor.metadataCache[metadata_url] = _SigningKeys(metadata_url)
    return found


JwtTokenExtractor.get_open_id_metadata = staticmethod(_signing_keys)  # every token validation uses our cache


# -- pooled connectors ---------------------------------------------------------------------------------------


class _PooledConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    """Connector clients reused per (service URL, audience), each with one kept-alive HTTP session."""

    def __init__(self, credentials: ServiceClientCredentialsFactory, app_id: str):
        self._credentials = credentials
        self._app_id = app_id
        self._clients: dict[tuple[str, str], ConnectorClient] = {}
        self._lock = asyncio.Lock()

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        key = (service_url, audience or BOT_FRAMEWORK_SCOPE)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                creds = await self._credentials.create_credentials(self._app_id, key[1], "", False)
                client = ConnectorClient(creds, base_url=service_url)
                # no hidden retries inside msrest: the outbox owns retries, backoff and Retry-After
                client.config.retry_policy.retries = 0
                client.config.retry_policy.policy.status_forcelist = []
                await client.__aenter__()  # opens the HTTP session once; it stays open for reuse
                self._clients[key] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.__aexit__(None, None, None)
        self._clients.clear()


class _PooledAuthentication(BotFrameworkAuthentication):  # type: ignore[misc]
    """Bot Framework's own token validation, with our pooled connectors and a cached user-token client.

    Bot Framework sends the same token with every activity for up to an hour. A token that passed validation for
    a channel and service URL is remembered until it expires, for at most `VALIDATED_TTL`: the same token
    again costs a dictionary lookup instead of decoding it four times and checking its RSA signature (measured
    at 50 users: about 0.3 ms of CPU per turn). A token that failed is never remembered.
    """

    VALIDATED_TTL = 600.0  # seconds; also bounds how long a key Bot Framework withdraws stays trusted
    VALIDATED_MAX = 1000

    def __init__(self, inner: BotFrameworkAuthentication, connectors: _PooledConnectorFactory,
                 clock: Callable[[], float] = time.time):
        self._inner = inner
        self._connectors = connectors
        self._user_token_clients: dict[str, Any] = {}
        self._validated: dict[tuple[str, str, str], tuple[float, AuthenticateRequestResult]] = {}
        self._clock = clock
        self.validations = 0  # tokens validated in full (for tests)

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        if not auth_header:
            return await self._validate(activity, auth_header)
        key = (auth_header, str(activity.channel_id), str(activity.service_url))
        now = self._clock()
        found = self._validated.get(key)
        if found is not None and now < found[0]:
            return found[1]
        result = await self._validate(activity, auth_header)
        expires = result.claims_identity.claims.get("exp") if result.claims_identity else None
        if isinstance(expires, int | float):
            if len(self._validated) >= self.VALIDATED_MAX:
                self._validated = {k: v for k, v in self._validated.items() if now < v[0]}
                if len(self._validated) >= self.VALIDATED_MAX:
                    self._validated.clear()
            self._validated[key] = (min(float(expires), now + self.VALIDATED_TTL), result)
        return result

    async def _validate(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        self.validations += 1
        result = await self._inner.authenticate_request(activity, auth_header)
        result.connector_factory = self._connectors
        return result

    async def authenticate_streaming_request(self, auth_header: str, channel_id_header: str) -> Any:
        return await self._inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self._connectors

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> Any:
        key = str(claims_identity.claims.get(AuthenticationConstants.AUDIENCE_CLAIM, ""))
        if key not in self._user_token_clients:
            self._user_token_clients[key] = await self._inner.create_user_token_client(claims_identity)
        return self._user_token_clients[key]

    def create_bot_framework_client(self) -> Any:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return str(self._inner.get_originating_audience())

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self._inner.authenticate_channel_request(auth_header)


# -- the fast path for sending activities ----------------------------------------------------------------------


class _FastConnector:
    """Posts activities with one kept-alive aiohttp session and plain JSON.

    The stock path (msrest over `requests` in a thread pool, msrest's model serializer, a deep copy per
    activity) costs about 2.5 ms of CPU per message; this costs a fraction of that. Used for replies in a turn
    and for proactive messages; conversation creation and TeamsInfo keep botbuilder's client.
    """

    def __init__(self, credentials: _CredentialFactory):
        self._credentials = credentials
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30, connect=10),
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=50, keepalive_timeout=60))
        return self._session

    async def post(self, service_url: str, conversation_id: str, activity: dict[str, Any], *,
                   reply_to: str | None = None, audience: str | None = None) -> str | None:
        url = f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation_id, safe='')}/activities"
        if reply_to:
            url += f"/{quote(reply_to, safe='')}"
        headers = {"Content-Type": "application/json"}
        creds = self._credentials.for_scope(audience)
        if creds is not None:
            headers["Authorization"] = f"Bearer {await creds.token()}"
        try:
            async with self._http().post(url, data=json.dumps(activity, ensure_ascii=False).encode(),
                                         headers=headers) as response:
                if response.status >= 400:
                    raise DeliveryError(response.status, response.reason or "refused",
                                        _retry_after(response.headers.get("Retry-After")))
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(0, type(exc).__name__) from None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {}
        return body.get("id") if isinstance(body, dict) else None

    async def fetch(self, url: str, max_bytes: int, *, token: bool = False, audience: str | None = None) -> bytes:
        """GET a file someone sent to the bot, at most `max_bytes` (else FileTooLarge). With `token`, the bot's
        token (for `audience`) goes along (a photo pasted into a chat is held by the connector); a file Teams
        uploaded comes with its own short-lived download URL and gets no token."""
        headers = {}
        creds = self._credentials.for_scope(audience) if token else None
        if creds is not None:
            headers["Authorization"] = f"Bearer {await creds.token()}"
        data = bytearray()
        try:
            async with self._http().get(url, headers=headers) as response:
                if response.status >= 400:
                    raise DeliveryError(response.status, response.reason or "refused")
                if response.content_length is not None and response.content_length > max_bytes:
                    raise FileTooLarge(url)
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise FileTooLarge(url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(0, type(exc).__name__) from None
        return bytes(data)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


# -- the turn port -------------------------------------------------------------------------------------------


class Turn:
    """One inbound activity being handled: its JSON, and what the bot can do in reply.

    botbuilder's TurnContext (with the msrest model of the whole activity) is built only when an operation
    needs it (updating a card, TeamsInfo lookups); a plain question-and-answer turn never pays for it.
    """

    def __init__(self, activity: dict[str, Any], gateway: TeamsGateway, authenticated: AuthenticateRequestResult):
        self.activity = activity
        self._gateway = gateway
        self._authenticated = authenticated
        self._context: TurnContext | None = None
        self.invoke_response: tuple[int, Any] | None = None

    async def context(self) -> TurnContext:
        """The botbuilder TurnContext for this turn, set up as CloudAdapter.process_activity would."""
        if self._context is None:
            self._context = await self._gateway.turn_context(self._authenticated, self.activity)
        return self._context

    async def send(self, activity: dict[str, Any]) -> str | None:
        """Send an activity (message, typing, ...) to this conversation as a reply; returns its id."""
        act = self.activity
        conversation = act.get("conversation") or {}
        reply = {**activity, "channelId": act.get("channelId"), "serviceUrl": act.get("serviceUrl"),
                 "conversation": conversation, "from": act.get("recipient"), "recipient": act.get("from"),
                 "replyToId": act.get("id")}
        if act.get("locale") and "locale" not in activity:
            reply["locale"] = act["locale"]
        return await self._gateway.fast.post(str(act.get("serviceUrl")), str(conversation.get("id")), reply,
                                             reply_to=act.get("id"), audience=self._authenticated.audience)

    async def update(self, activity_id: str, activity: dict[str, Any]) -> None:
        """Replace an earlier bot message (e.g. a card) in this conversation."""
        act = Activity().deserialize(activity)
        act.id = activity_id
        await (await self.context()).update_activity(act)

    def respond(self, status: int, body: Any = None) -> None:
        """The synchronous answer to an invoke (Action.Execute gets its card back here)."""
        self.invoke_response = (status, body)

    async def member(self, user_id: str) -> dict[str, Any] | None:
        """The Teams profile of a user in this conversation (name, email/UPN, Entra object id), if found."""
        try:
            m = await TeamsInfo.get_member(await self.context(), user_id)
        except Exception as exc:  # noqa: BLE001 - the profile is optional; the caller decides what to do
            log.info("member lookup failed: %s", type(exc).__name__)
            return None
        return {"id": m.id, "name": m.name, "aadObjectId": m.aad_object_id, "email": m.email,
                "userPrincipalName": m.user_principal_name, "tenantId": getattr(m, "tenant_id", None)}

    async def team_channels(self) -> list[dict[str, str]]:
        """The channels of the team this activity came from (id and name; the General channel has none)."""
        channels = await TeamsInfo.get_team_channels(await self.context())
        return [{"id": c.id, "name": c.name or "General"} for c in channels]

    async def download(self, url: str, max_bytes: int) -> bytes:
        """A file sent to the bot in this conversation (see _FastConnector.fetch): with the bot's token only when
        the connector that sent the activity holds it (its /v3/attachments/), never to another host."""
        service = str(self.activity.get("serviceUrl") or "").rstrip("/")
        held = bool(service) and url.startswith(service + "/v3/attachments/")
        return await self._gateway.fast.fetch(url, max_bytes, token=held, audience=self._authenticated.audience)

    async def team_members(self) -> list[dict[str, Any]]:
        members = await TeamsInfo.get_team_members(await self.context())
        return [{"id": m.id, "name": m.name, "aadObjectId": m.aad_object_id, "email": m.email,
                 "userPrincipalName": m.user_principal_name} for m in members]


TurnHandler = Callable[[Turn], Awaitable[None]]


def _auth_view(body: dict[str, Any]) -> Activity:
    """The fields of an activity that token validation reads (channel, service URL, recipient role): building
    this small model instead of deserializing the whole activity saves about 0.1 ms per turn."""
    recipient = body.get("recipient")
    return Activity(type=body.get("type"), id=body.get("id"), channel_id=body.get("channelId"),
                    service_url=body.get("serviceUrl"),
                    recipient=ChannelAccount(id=recipient.get("id"), role=recipient.get("role"))
                    if isinstance(recipient, dict) else None)


class TeamsGateway:
    """Bot Framework in and out: authenticate and run inbound turns, send proactive messages."""

    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self._credentials = _CredentialFactory(cfg)
        self._connectors = _PooledConnectorFactory(self._credentials, cfg.app_id)
        self.fast = _FastConnector(self._credentials)
        if cfg.openid_metadata_url or cfg.token_issuer or cfg.token_endpoint:
            inner = BotFrameworkAuthenticationFactory.create(
                to_channel_from_bot_login_url=token_endpoint(cfg),
                to_channel_from_bot_oauth_scope=BOT_FRAMEWORK_SCOPE,
                to_bot_from_channel_token_issuer=(
                    cfg.token_issuer or AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER),
                oauth_url=AuthenticationConstants.OAUTH_URL,
                to_bot_from_channel_open_id_metadata_url=(
                    cfg.openid_metadata_url or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPEN_ID_METADATA_URL),
                to_bot_from_emulator_open_id_metadata_url=(
                    cfg.openid_metadata_url or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPEN_ID_METADATA_URL),
                credential_factory=self._credentials,
            )
        else:
            inner = BotFrameworkAuthenticationFactory.create(credential_factory=self._credentials)
        self.adapter = CloudAdapter(_PooledAuthentication(inner, self._connectors))
        self.adapter.on_turn_error = self._on_turn_error

    async def close(self) -> None:
        await self._connectors.close()
        await self.fast.close()

    @staticmethod
    async def _on_turn_error(context: TurnContext, error: Exception) -> None:
        raise error

    async def authenticate(self, auth_header: str | None, body: dict[str, Any]) -> Any:
        """Validate the request's token for this activity (CloudAdapter's BotFrameworkAuthentication);
        raises Unauthorized."""
        auth = self.adapter.bot_framework_authentication
        header = auth_header if self.cfg.auth_enabled else None
        try:
            return await auth.authenticate_request(_auth_view(body), header)
        except Exception as exc:  # noqa: BLE001 - every validation failure, whatever its type, is a 401
            raise Unauthorized(f"{type(exc).__name__}: {exc}") from None

    async def run(self, authenticated: Any, body: dict[str, Any], handler: TurnHandler) -> tuple[int, Any]:
        """Run one authenticated turn; returns the HTTP status and JSON body to answer.

        What CloudAdapter.process_activity does, minus its eager parts: the turn context is built on demand
        (`Turn.context`), and an invoke's response is serialized here (the stock path's HTTP 500, see above).
        There is no middleware to run. An invoke the handler did not answer gets 501, as in botbuilder.
        """
        turn = Turn(body, self, authenticated)
        await handler(turn)
        if body.get("type") != ActivityTypes.invoke:
            return 200, None
        if turn.invoke_response is None:
            return 501, None
        status, payload = turn.invoke_response
        if hasattr(payload, "serialize"):  # a msrest model; our handlers give plain dicts
            payload = payload.serialize()
        return int(status or 200), payload

    async def turn_context(self, result: AuthenticateRequestResult, body: dict[str, Any]) -> TurnContext:
        """A TurnContext for an inbound activity, with the turn state CloudAdapter.process_activity sets."""
        activity = Activity().deserialize(body)
        activity.caller_id = result.caller_id
        connector = await result.connector_factory.create(activity.service_url, result.audience)
        user_tokens = await self.adapter.bot_framework_authentication.create_user_token_client(
            result.claims_identity)

        async def no_logic(_context: TurnContext) -> None:
            return None

        return self.adapter._create_turn_context(  # private, but botbuilder 4.17.1 is final
            activity, result.claims_identity, result.audience, connector, user_tokens, no_logic,
            result.connector_factory)

    # -- proactive ----------------------------------------------------------------------------------------

    async def send_to(self, coords: Coordinates, activity: dict[str, Any]) -> str | None:
        """Send an activity to a stored conversation; raises DeliveryError with the connector's status."""
        message = {**activity, "channelId": coords.channel_id or Channels.ms_teams, "serviceUrl": coords.service_url,
                   "from": {"id": coords.bot_id or self.cfg.bot_id},
                   "conversation": {"id": coords.conversation_id, "tenantId": coords.tenant_id,
                                    "conversationType": coords.conversation_type}}
        return await self.fast.post(coords.service_url, coords.conversation_id, message)

    async def create_personal_conversation(self, service_url: str, tenant_id: str | None, user_id: str,
                                           activity: dict[str, Any] | None = None) -> str:
        """Open (or find) the 1:1 chat with a user who never wrote to the bot; returns its conversation id."""
        params = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=self.cfg.bot_id),
            members=[ChannelAccount(id=user_id)],
            tenant_id=tenant_id,
            channel_data=TeamsChannelData(tenant=TenantInfo(id=tenant_id)) if tenant_id else None,
            activity=Activity().deserialize(activity) if activity else None,
        )
        conversation_id, _ = await self._create_conversation(service_url, params)
        return conversation_id

    async def send_to_channel(self, service_url: str, tenant_id: str | None, teams_channel_id: str,
                              activity: dict[str, Any]) -> tuple[str, str | None]:
        """Start a new thread in a team channel; returns (thread conversation id, activity id)."""
        params = ConversationParameters(
            is_group=True,
            bot=ChannelAccount(id=self.cfg.bot_id),
            tenant_id=tenant_id,
            channel_data=TeamsChannelData(channel=ChannelInfo(id=teams_channel_id),
                                          tenant=TenantInfo(id=tenant_id) if tenant_id else None),
            activity=Activity().deserialize(activity),
        )
        return await self._create_conversation(service_url, params)

    async def _create_conversation(self, service_url: str, params: ConversationParameters) -> tuple[str, str | None]:
        """CloudAdapter.create_conversation with the bot id it needs even when auth is off (local mode);
        returns (conversation id, id of the first activity)."""
        out: list[tuple[str, str | None]] = []

        async def callback(context: TurnContext) -> None:
            out.append((context.activity.conversation.id, context.activity.id))

        try:
            await self.adapter.create_conversation(self.cfg.bot_id, callback, params, Channels.ms_teams,
                                                   service_url, None)
        except Exception as exc:  # noqa: BLE001 - translated into our error with the HTTP status
            raise _delivery_error(exc) from None
        return out[0]


def _delivery_error(exc: Exception) -> DeliveryError:
    response = getattr(exc, "response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    retry_after = None
    if response is not None:
        header = getattr(response, "headers", {}).get("Retry-After")
        try:
            retry_after = float(header) if header else None
        except ValueError:
            retry_after = None
    return DeliveryError(status, type(exc).__name__, retry_after)
