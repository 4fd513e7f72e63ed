"""Settings: one TOML file plus environment overrides, validated once into frozen models.

Where a value comes from, in order of precedence:

1. an environment variable ``PLAYFAIR_<SECTION>__<KEY>`` (``PLAYFAIR_DATABASE__URL``);
   its text is read as a TOML value when it is one (``8080``, ``true``, ``["a", "b"]``)
   and as a plain string otherwise;
2. the TOML file given by ``--config PATH`` or ``PLAYFAIR_CONFIG``;
3. the defaults below, which ``instance.example.toml`` documents key by key.

Anything wrong (an unknown key, a value of the wrong shape) raises :class:`ConfigError`
whose message names the key and where it came from, so start-up stops with one line.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from federation.urls import UnacceptableURL, checked_url

ENV_PREFIX = "PLAYFAIR_"
CONFIG_ENV = "PLAYFAIR_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message is meant for the admin as it is."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than anything a setting or a form means (a voucher's validity, a retention), and
# short enough that now + it is still a date Python can hold.
MAX_DURATION = timedelta(days=36_500)
_EXPECTED = "expected a duration such as 30s, 15m, 6h or 1d"


def parse_duration(value: object) -> timedelta:
    """The one parser of durations in settings and commands: ``90``, ``"90s"``,
    ``"15m"``, ``"6h"``, ``"1d"``, ``"2w"`` or a timedelta, from zero to
    :data:`MAX_DURATION`; anything else is a ValueError saying what is expected."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(_EXPECTED)
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        seconds = float(number) * _UNIT_SECONDS[unit or "s"]
    else:
        raise ValueError(_EXPECTED)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(_EXPECTED)
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration may be at most {MAX_DURATION.days} days")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class InstanceRole(StrEnum):
    SCENE = "scene"
    HUB = "hub"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class InstanceSettings(_Section):
    name: str = Field(default="playfair", min_length=1, max_length=100)
    # Empty means http://HOST:PORT of server.bind: right for trying playfair on one
    # machine, wrong for anything public (set the https origin people reach you at).
    base_url: str = ""
    data_dir: Path = Path("data")
    role: InstanceRole = InstanceRole.SCENE
    # Normally read from {data_dir}/secret.key, which `playfair init` writes. Set it here
    # (or in PLAYFAIR_INSTANCE__SECRET) when several machines serve one instance.
    secret: str | None = Field(default=None, min_length=32)

    @field_validator("base_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        if not value.strip():
            return ""
        try:
            checked_url(value.strip(), allow_http=True, origin_only=True)
        except UnacceptableURL as exc:
            raise ValueError(
                f"must be an http:// or https:// origin such as https://music.example: {exc}"
            ) from None
        parts = urlsplit(value.strip())
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class ServerSettings(_Section):
    bind: str = "127.0.0.1:8080"
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For we believe.
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    access_log: bool = True
    shutdown_timeout: Duration = timedelta(seconds=10)

    @field_validator("bind")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @property
    def host(self) -> str:
        return split_host_port(self.bind)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.bind)[1]


def split_host_port(bind: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → ``("127.0.0.1", 8080)``; ``"[::1]:80"`` → ``("::1", 80)``."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, got {bind!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


class DatabaseSettings(_Section):
    # Empty means the embedded default: SQLite in {data_dir}/playfair.sqlite3.
    url: str = ""
    pool_size: int = Field(default=5, ge=1, le=100)
    busy_timeout: Duration = timedelta(seconds=10)
    echo: bool = False
    # A session opened while another is open in the same task (on SQLite it waits for
    # the first's connection for ever): "log" it with both places, or "raise" (tests).
    nested_sessions: Literal["log", "raise"] = "log"

    @field_validator("url")
    @classmethod
    def _driver(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        scheme = value.split("://", 1)[0] if "://" in value else ""
        normalised = {
            "sqlite": "sqlite+aiosqlite",
            "sqlite+aiosqlite": "sqlite+aiosqlite",
            "postgres": "postgresql+asyncpg",
            "postgresql": "postgresql+asyncpg",
            "postgresql+asyncpg": "postgresql+asyncpg",
        }.get(scheme)
        if normalised is None:
            raise ValueError(
                "must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/DB"
            )
        return normalised + value[len(scheme) :]


class WorkerSettings(_Section):
    concurrency: int = Field(default=4, ge=1, le=64)
    poll_interval: Duration = timedelta(seconds=1)
    lease: Duration = timedelta(seconds=60)
    retry_base: Duration = timedelta(seconds=5)
    retry_max: Duration = timedelta(hours=1)
    keep_finished: Duration = timedelta(days=14)

    @field_validator("poll_interval", "lease", "retry_base", "retry_max", "keep_finished")
    @classmethod
    def _longer_than_zero(cls, value: timedelta) -> timedelta:
        return _positive(value)


class SignupMode(StrEnum):
    OPEN = "open"
    APPROVAL = "approval"
    INVITE = "invite"
    CLOSED = "closed"


class AccountSettings(_Section):
    # Who may make a listener account: open, approval (an admin approves each),
    # invite (an invitation code is needed) or closed.
    signup: SignupMode = SignupMode.OPEN
    # The same for artist and label accounts.
    artist_signup: SignupMode = SignupMode.APPROVAL
    # A browser stays signed in this long.
    session_lifetime: Duration = timedelta(days=30)
    # Password attempts within rate_window: per browser that signed in to the account
    # before; for other browsers, per address and per account; per session for the
    # password checks in the settings (server/web/throttle.py).
    login_attempts: int = Field(default=10, ge=1, le=10_000)
    # Sign-ups per address within rate_window.
    signup_attempts: int = Field(default=5, ge=1, le=10_000)
    # OAuth app registrations (RFC 7591) per address within rate_window.
    app_registrations: int = Field(default=20, ge=1, le=10_000)
    rate_window: Duration = timedelta(minutes=15)

    @field_validator("session_lifetime", "rate_window")
    @classmethod
    def _longer_than_zero(cls, value: timedelta) -> timedelta:
        return _positive(value)


class MembershipSettings(_Section):
    # The membership classes of the co-op.
    classes: tuple[str, ...] = ("listener", "artist", "worker", "supporter")

    @field_validator("classes")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one membership class")
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
                raise ValueError(f"{name!r} is not a class name (lower-case, up to 32)")
        return value


class CreditPack(_Section):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    tokens: int = Field(ge=1, le=10_000_000)
    price_cents: int = Field(ge=1, le=100_000_00)


class MoneySettings(_Section):
    # The artist's share of each paid play, in percent; the instance keeps the rest.
    artist_share: float = Field(default=70.0, ge=0.0, le=100.0)
    # Tokens a new account starts with.
    starter_balance: int = Field(default=128, ge=0, le=1_000_000)
    # How long after a play session opens its stream URL works (for the listener who
    # opened it only) and its play may be claimed: the longest track with its pauses.
    play_session_lifetime: Duration = timedelta(hours=2)
    # What tokens are worth: rate_tokens tokens = rate_cents cents of currency. Recorded
    # with every top-up and payout, so history stays true when it changes.
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    rate_tokens: int = Field(default=1022, ge=1)
    rate_cents: int = Field(default=125, ge=1)
    # Artists can ask for a payout once their earnings are worth this much.
    payout_threshold_cents: int = Field(default=1000, ge=0)
    # What listeners can buy through the payment provider.
    packs: tuple[CreditPack, ...] = (
        CreditPack(name="song", tokens=1022, price_cents=125),
        CreditPack(name="album", tokens=10220, price_cents=1250),
    )
    # "" (vouchers only) or "stripe".
    provider: str = Field(default="", pattern=r"^(|stripe)$")
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = "https://api.stripe.com"

    @property
    def artist_share_bp(self) -> int:
        return round(self.artist_share * 100)

    @field_validator("play_session_lifetime")
    @classmethod
    def _longer_than_zero(cls, value: timedelta) -> timedelta:
        return _positive(value)


class AudioLinkMode(StrEnum):
    REDIRECT = "redirect"
    SERVE = "serve"


class MediaSettings(_Section):
    # Largest audio file an artist may upload, in bytes.
    max_upload_bytes: int = Field(default=500 * 1024 * 1024, ge=1024 * 1024)
    opus_bitrate: str = "128k"
    mp3_bitrate: str = "192k"
    preview_length: Duration = timedelta(seconds=45)
    preview_fade: Duration = timedelta(seconds=2)
    preview_bitrate: str = "128k"
    ffmpeg: str = "ffmpeg"
    # How long one ffmpeg run (the decode check of an upload, or one rendition) may take.
    ffmpeg_timeout: Duration = timedelta(minutes=10)
    # Empty: playfair sends file bodies itself. A path such as "/_media/": playfair
    # answers with X-Accel-Redirect to that internal nginx location plus the file's key.
    x_accel_redirect: str = ""
    # "redirect": a stream allowed in full to someone who could download the file anyway
    # (a free track, the artist's own, one the listener owns) answers 307 with a signed
    # audio link, which this process serves without the framework or the database, or
    # nginx alone (`playfair nginx-site`); "serve": the stream route sends the file.
    audio_links: AudioLinkMode = AudioLinkMode.REDIRECT
    # How long an audio link works (rounded up to 5 minutes): a player that seeks after
    # it starts the track again.
    audio_link_lifetime: Duration = timedelta(hours=1)

    @field_validator("opus_bitrate", "mp3_bitrate", "preview_bitrate")
    @classmethod
    def _bitrate(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2,3}k", value):
            raise ValueError("expected a bitrate such as 128k")
        return value

    @field_validator("x_accel_redirect")
    @classmethod
    def _location(cls, value: str) -> str:
        if value and not (value.startswith("/") and value.endswith("/")):
            raise ValueError("must be empty or a location such as /_media/")
        return value

    @field_validator("preview_length", "preview_fade", "ffmpeg_timeout", "audio_link_lifetime")
    @classmethod
    def _longer_than_zero(cls, value: timedelta) -> timedelta:
        return _positive(value)


class FederationMode(StrEnum):
    OPEN = "open"  # everybody except blocked domains
    ALLOWLIST = "allowlist"  # only domains an admin allowed


class PartnershipPolicy(StrEnum):
    AUTO = "auto"  # accept every instance that asks
    MANUAL = "manual"  # an admin accepts (`playfair partners accept`)


class FederationSettings(_Section):
    # Lab networks and tests only: lets fetches reach loopback and private addresses and
    # lets plain http:// peers through.
    allow_private_addresses: bool = False
    fetch_timeout: Duration = timedelta(seconds=10)
    max_fetch_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    mode: FederationMode = FederationMode.OPEN
    partnerships: PartnershipPolicy = PartnershipPolicy.MANUAL
    audio_cache_bytes: int = Field(default=2 * 1024**3, ge=1024 * 1024)
    statement_period: Duration = timedelta(days=1)
    # The co-op hub's instance actor URL: statements and their answers go to it in copy.
    hub: str = ""
    # This instance is the co-op hub: it checks its members' statements and settles.
    hub_role: bool = False
    max_inbox_bytes: int = Field(default=1024 * 1024, ge=1024)
    actor_cache_lifetime: Duration = timedelta(days=1)
    delivery_retry_base: Duration = timedelta(seconds=30)
    delivery_retry_max: Duration = timedelta(hours=6)
    delivery_give_up_after: Duration = timedelta(days=5)
    delivery_timeout: Duration = timedelta(seconds=20)
    # POSTs one delivery job has in flight at once (a job carries a batch of deliveries).
    delivery_concurrency: int = Field(default=16, ge=1, le=256)

    @field_validator(
        "fetch_timeout",
        "actor_cache_lifetime",
        "delivery_retry_base",
        "delivery_retry_max",
        "delivery_give_up_after",
        "delivery_timeout",
        "statement_period",
    )
    @classmethod
    def _longer_than_zero(cls, value: timedelta) -> timedelta:
        return _positive(value)


class LoggingSettings(_Section):
    level: str = "INFO"
    format: LogFormat = LogFormat.TEXT

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value


class Settings(_Section):
    instance: InstanceSettings = InstanceSettings()
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    worker: WorkerSettings = WorkerSettings()
    accounts: AccountSettings = AccountSettings()
    membership: MembershipSettings = MembershipSettings()
    money: MoneySettings = MoneySettings()
    media: MediaSettings = MediaSettings()
    federation: FederationSettings = FederationSettings()
    logging: LoggingSettings = LoggingSettings()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.instance.data_dir / 'playfair.sqlite3'}"

    @property
    def media_dir(self) -> Path:
        return self.instance.data_dir / "media"

    @property
    def secret_file(self) -> Path:
        return self.instance.data_dir / "secret.key"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Read, merge and validate the configuration; raise ConfigError naming the bad key.

    ``overrides`` (section → key → value) win over everything; tests and the command
    line's own flags (``--bind``) use it.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    data: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    base_dir = Path.cwd()
    if path is not None:
        config_path = Path(path)
        data = _read_toml(config_path)
        base_dir = config_path.resolve().parent
        for section, values in data.items():
            for key in values:
                origin[(section, key)] = str(config_path)
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not sep or not section or not key:
            raise ConfigError(
                f"{name}: expected PLAYFAIR_<SECTION>__<KEY>, for example PLAYFAIR_DATABASE__URL"
            )
        data.setdefault(section, {})[key] = _env_value(raw)
        origin[(section, key)] = name
    for section, section_values in (overrides or {}).items():
        for key, value in section_values.items():
            data.setdefault(section, {})[key] = value
            origin[(section, key)] = "the command line"
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    data_dir = settings.instance.data_dir.expanduser()
    if not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    base_url = settings.instance.base_url or _origin_of_bind(settings.server)
    instance = settings.instance.model_copy(update={"data_dir": data_dir, "base_url": base_url})
    return settings.model_copy(update={"instance": instance})


def _origin_of_bind(server: ServerSettings) -> str:
    host = server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}"


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a [{section}] table in {path}")
    return data


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _describe(exc: ValidationError, origin: Mapping[tuple[str, str], str]) -> str:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc) or "settings"
    where = origin.get((loc[0], loc[1])) if len(loc) >= 2 else None
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    elif first["type"] in ("model_type", "model_attributes_type"):
        message = "expected a table of settings"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
        if "input" in first and not isinstance(first["input"], dict):
            message += f" (got {first['input']!r})"
    more = len(exc.errors()) - 1
    suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
    source = f" (from {where})" if where else ""
    return f"config error: {key}: {message}{source}{suffix}"
