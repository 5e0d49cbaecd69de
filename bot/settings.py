"""Settings, read once from the environment at start and validated; names are the ones Teams developers know."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hms.config import DEFAULT_CONFIG_PATH
from usecases.retention import Retention

DATABASE_FILE = "hms-bot.sqlite3"


def default_data_dir() -> Path:
    """Where the SQLite database goes when neither HMS_DATA_DIR nor DATABASE_URL says: the user's data folder
    ($XDG_DATA_HOME/hms-hjulet, by default ~/.local/share/hms-hjulet), never the folder the command runs in.
    The image sets HMS_DATA_DIR=/data (a volume); scripts/run sets the checkout's var/."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hms-hjulet"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything the process needs from outside; secrets never appear in repr or logs."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=False)

    app_id: str = Field("", validation_alias=_env("MicrosoftAppId", "MICROSOFT_APP_ID"))
    app_password: SecretStr = Field(SecretStr(""), validation_alias=_env("MicrosoftAppPassword",
                                                                          "MICROSOFT_APP_PASSWORD"))
    app_type: Literal["SingleTenant", "MultiTenant", "UserAssignedMSI"] = Field(
        "SingleTenant", validation_alias=_env("MicrosoftAppType", "MICROSOFT_APP_TYPE"))
    app_tenant_id: str = Field("", validation_alias=_env("MicrosoftAppTenantId", "MICROSOFT_APP_TENANT_ID"))
    # The folder the bot writes to (the SQLite database, local mode's files); made on first use.
    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=_env("HMS_DATA_DIR"))
    # Empty: SQLite in the data folder (one process; several replicas need postgresql://).
    database_url: str = Field("", validation_alias=_env("DATABASE_URL"))
    config_path: Path = Field(DEFAULT_CONFIG_PATH, validation_alias=_env("HMS_CONFIG"))
    port: int = Field(3978, ge=1, le=65535, validation_alias=_env("HMS_PORT", "PORT"))
    host: str = Field("0.0.0.0", validation_alias=_env("HMS_HOST"))
    # where people reach the bot's links (downloads, calendar feeds, the wheel's picture); default: this machine
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$", validation_alias=_env("HMS_PUBLIC_URL"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    # `json`: one JSON object per line for log pipelines (bot/logs.py); the readable lines are the default
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("LOG_FORMAT"))
    # Overrides for tests and sovereign clouds; production leaves them empty (Bot Framework's public cloud).
    openid_metadata_url: str | None = Field(None, validation_alias=_env("HMS_OPENID_METADATA_URL"))
    token_issuer: str | None = Field(None, validation_alias=_env("HMS_TOKEN_ISSUER"))
    token_endpoint: str | None = Field(None, validation_alias=_env("HMS_TOKEN_ENDPOINT"))
    scheduler: bool = Field(True, validation_alias=_env("HMS_SCHEDULER"))
    card_secret: SecretStr | None = Field(None, validation_alias=_env("HMS_CARD_SECRET"))
    max_body_bytes: int = Field(256 * 1024, ge=1024, validation_alias=_env("HMS_MAX_BODY_BYTES"))
    # Slow senders must not hold sockets (see bot/serving.py): seconds to send a request's headers (also how long
    # an idle keep-alive connection stays open) and its body; and the most connections open at once (keep it
    # well below the process's open-files limit, `ulimit -n`, which also covers database connections).
    header_timeout: float = Field(15.0, gt=0, validation_alias=_env("HMS_HEADER_TIMEOUT"))
    body_timeout: float = Field(15.0, gt=0, validation_alias=_env("HMS_BODY_TIMEOUT"))
    max_connections: int = Field(500, ge=1, validation_alias=_env("HMS_MAX_CONNECTIONS"))
    # Delivery: a message that gets no answer within the send timeout counts as failed and is retried; a claim on
    # outbox rows lasts the lease, which must cover at least two sends (see usecases/delivery.py).
    send_timeout: float = Field(30.0, gt=0, validation_alias=_env("HMS_SEND_TIMEOUT"))
    delivery_lease: float = Field(120.0, gt=0, validation_alias=_env("HMS_DELIVERY_LEASE"))
    # Turns in flight at once (see bot/admission.py): each gets its own database connection, so this sizes the
    # turns' pool; one more waits up to `queue_timeout` seconds for a turn to end, then gets 503 and Retry-After.
    max_turns: int = Field(20, ge=1, le=1000, validation_alias=_env("HMS_MAX_TURNS"))
    queue_timeout: float = Field(5.0, ge=0, validation_alias=_env("HMS_QUEUE_TIMEOUT"))
    # Retention (usecases/retention.py), pruned daily: retry-ledger rows are deleted after this many days (Teams
    # retries within minutes), and the card payloads of sent or dead outbox rows cleared (the rows stay: the record)
    ledger_retention_days: int = Field(7, ge=1, validation_alias=_env("HMS_LEDGER_RETENTION_DAYS"))
    outbox_retention_days: int = Field(90, ge=1, validation_alias=_env("HMS_OUTBOX_RETENTION_DAYS"))
    # Proactive messages per second for the whole tenant, all replicas together: Teams allows 50 per app per
    # tenant, and replies to turns draw on the same limit, so the default leaves them 10. Messages in flight at
    # once per process: the rate reached is about min(rate, concurrency / the connector's latency); at most 50,
    # the connections the Bot Connector client keeps per host (replies use them too, see bot/gateway.py).
    tenant_rate: float = Field(40.0, gt=0, validation_alias=_env("HMS_TENANT_RATE"))
    send_concurrency: int = Field(20, ge=1, le=50, validation_alias=_env("HMS_SEND_CONCURRENCY"))

    def retention(self) -> Retention:
        """How long the retry ledger and the outbox's card payloads are kept."""
        return Retention(ledger=dt.timedelta(days=self.ledger_retention_days),
                         outbox=dt.timedelta(days=self.outbox_retention_days))

    def card_key(self) -> bytes:
        """The key that signs card payloads: HMS_CARD_SECRET, else derived from the app password, else (local
        mode only: no app id) a fixed key that anyone can read in this source."""
        if self.card_secret and self.card_secret.get_secret_value():
            return self.card_secret.get_secret_value().encode()
        password = self.app_password.get_secret_value()
        seed = f"hms-card|{self.app_id}|{password}" if password else "hms-card|local-mode"
        return hashlib.sha256(seed.encode()).digest()

    @field_validator("delivery_lease")
    @classmethod
    def _lease(cls, v: float, info: ValidationInfo) -> float:
        timeout = info.data.get("send_timeout")
        if timeout is not None and v < 2 * timeout:
            raise ValueError(f"HMS_DELIVERY_LEASE must be at least twice HMS_SEND_TIMEOUT ({timeout:g} s)")
        return v

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().absolute()  # a relative HMS_DATA_DIR means the folder it names at start

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str) -> str:
        if v and not v.startswith(("sqlite:", "sqlite+", "postgres")):
            raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")
        return v

    @model_validator(mode="after")
    def _database_in_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / DATABASE_FILE}"
        return self

    @model_validator(mode="after")
    def _card_key_is_secret(self) -> Settings:
        # With an app id the bot faces Teams: a card signed with the public local-mode key could be forged by
        # anyone. A managed identity has no password to derive the key from, so it needs HMS_CARD_SECRET.
        if not self.app_id or self.app_password.get_secret_value() or (
                self.card_secret and self.card_secret.get_secret_value()):
            return self
        if self.app_type == "UserAssignedMSI":
            raise ValueError("MicrosoftAppType=UserAssignedMSI has no app password to sign cards with: set "
                             "HMS_CARD_SECRET to a long random secret, the same on every replica")
        raise ValueError("MicrosoftAppPassword is not set (cards are signed with a key derived from it; "
                         "HMS_CARD_SECRET may be set instead)")
