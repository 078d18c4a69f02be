"""One ``Settings`` object, assembled from a file, the environment and explicit overrides.

Precedence, lowest first: defaults < ``--config`` file (YAML or TOML) < ``CHEKT_SANDBOX_*``
environment variables < CLI flags / keyword overrides. Clients and API keys can only come
from the file (they are lists of records), so a team can pin its credentials in its repo.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError
from sandbox.faults import FaultSpec, RuleError, parse_rule
from sandbox.vocabulary import PROFILES, RATE_LIMITS, SETTABLE_SIGNATURE_VARIANTS, one_of

ENV_PREFIX = "CHEKT_SANDBOX_"
LIVE_PREFIX = "chekt_live_"
CLIENT_KINDS = ("dealer_app", "platform_partner")
MAX_SKEW = 7 * 86400  # seconds the stamped clock may be off, either way
# the webhook chaos settings (sandbox.webhooks.chaos) and the most each may be; the knob of
# /_sandbox/faults and the scenario fault step is the name without ``webhook_``
CHAOS_LIMITS: dict[str, float] = {
    "webhook_burst": 10_000,
    "webhook_slow_send_ms": 30_000,
    "webhook_oversize": 8 << 20,
    "webhook_unknown_types": 1,
    "webhook_extra_fields": 1,
}


class SettingsError(SandboxError, ValueError):
    """A configuration problem, worded for the person who wrote the configuration."""


@dataclass(frozen=True)
class ClientSpec:
    """An OAuth client pinned in the settings file."""

    client_id: str
    client_secret: str | None = None  # None: a public client or an assertion-only client
    kind: str = "platform_partner"
    dealer_ids: tuple[int, ...] = ()
    scopes: tuple[str, ...] | None = None  # None: every Partner API scope
    name: str | None = None
    redirect_uris: tuple[str, ...] = ()
    logout_urls: tuple[str, ...] = ()
    public: bool = False
    public_key: str | None = None  # PEM text (RSA or EC) for assertion tokens
    public_key_file: str | None = None
    jwks_url: str | None = None
    key_id: str | None = None


@dataclass(frozen=True)
class ApiKeySpec:
    """An API key pinned in the settings file; it reaches exactly one dealer."""

    key: str
    dealer_id: int
    scopes: tuple[str, ...] | None = None
    name: str | None = None


DEFAULT_BRIDGE_PORT = 30003  # where a CHeKT bridge's local API answers on a LAN


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    bridge: bool = True  # serve the bridges' local API on a listener of its own
    bridge_port: int = DEFAULT_BRIDGE_PORT  # 0: a free port
    seed: int = 42
    db: str | None = None  # None: an in-memory store
    clock: str = "system"
    issuer: str | None = None  # None: the origin each request used
    audience: str = "https://adc-m2m.chektdev.com/"
    extra_audiences: tuple[str, ...] = ()
    token_lifetime: int = 3600
    media_url_lifetime: int = 3600  # seconds of sandbox time a signed media/tracking link works
    timestamp_style: str = "iso"
    error_style: str = "rfc"
    partner_claim: str = "https://api.chektdev.com/claims/partner"
    admin_token: str | None = None
    idempotency_ttl: int = 86400
    dealers: int = 3
    sites_per_dealer: int = 5
    default_user: str | None = None  # email or user id signed in without a page at /authorize
    login_hint_off_loopback: bool = False  # login_hint skips the sign-in page off loopback too
    code_lifetime: int = 60
    allow_private_destinations: bool = False
    tls: bool = False
    state_dir: str = ".chekt-sandbox"
    callback: str | None = None  # serve --callback: a sandbox-wide subscription
    callback_events: tuple[str, ...] = ()  # empty: every event type
    callback_secret: str | None = None
    webhook_profile: str = "chekt-apps"
    signature_variant: str = "timestamped-hex"
    webhook_timeout: float = 30.0
    webhook_concurrency: int = 10  # attempts in flight per subscription
    duplicate_rate: float = 0.0  # share of attempts sent twice (receivers must dedupe)
    reorder_window: float = 0.0  # hold deliveries back up to this many seconds (reordering)
    # webhook chaos (sandbox.webhooks.chaos): what a receiver must survive besides those two
    webhook_burst: int = 0  # the first N deliveries' first attempts skip the concurrency cap
    webhook_slow_send_ms: float = 0.0  # every body trickles out over this many ms
    webhook_oversize: int = 0  # bytes each body is padded to (0: off)
    webhook_unknown_types: float = 0.0  # share of deliveries followed by an unknown type
    webhook_extra_fields: float = 0.0  # share of deliveries with unknown fields added
    max_body: int = 1 << 20  # bytes; larger bodies get 413
    max_headers: int = 16 << 10  # bytes of request headers; more gets 431
    request_timeout: float = 10.0  # a whole request must arrive within this of its first byte
    idle_timeout: float = 10.0  # close connections that send nothing for this long
    check_responses: bool = False  # self-check every response against /openapi.json
    journal_entries: int = 10_000  # the recorder keeps at most this many requests
    journal_bytes: int = 50 * 1024 * 1024  # ... and at most this many bytes (headers, bodies)
    # names besides loopback, host and issuer that a Host header may use (e.g. a compose
    # service name); "*" turns the DNS-rebinding check off
    allowed_hosts: tuple[str, ...] = ()
    max_webhooks_per_client: int = 25
    rate_limit: str = "off"  # free | pro | enterprise | off: CHeKT's token buckets per client
    clock_skew: float = 0.0  # seconds added to the times stamped in tokens and signatures
    faults: tuple[FaultSpec, ...] = ()  # inbound fault rules (see sandbox.faults)
    clients: tuple[ClientSpec, ...] = ()
    api_keys: tuple[ApiKeySpec, ...] = field(default=())

    @property
    def origin(self) -> str:
        """``scheme://host:port`` of this sandbox (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def with_port(self, port: int) -> Settings:
        return dataclasses.replace(self, port=port)

    @property
    def own_ports(self) -> tuple[int, ...]:
        """The ports this sandbox listens on (known once bound): never a webhook's."""
        bridge = (self.bridge_port,) if self.bridge and self.bridge_port else ()
        return tuple(p for p in (self.port, *bridge) if p)

    @property
    def audiences(self) -> tuple[str, ...]:
        return (self.audience, *self.extra_audiences)

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")

    @classmethod
    def load(
        cls,
        config: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        values: dict[str, Any] = {}
        if config is not None:
            values.update(_key_files_beside(_read_file(Path(config)), Path(config).parent))
        values.update(_from_env(os.environ if env is None else env))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values, source=str(config) if config is not None else "settings")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "settings") -> Settings:
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                tip = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise SettingsError(f"{source}: unknown setting {name!r}{tip}")
            kwargs[name] = _coerce(name, raw, source)
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.clock not in ("system", "virtual"):
            raise SettingsError(f"clock must be 'system' or 'virtual', not {self.clock!r}")
        if self.error_style not in ("rfc", "auth0"):
            raise SettingsError(f"error_style must be 'rfc' or 'auth0', not {self.error_style!r}")
        if self.timestamp_style not in ("iso", "space"):
            raise SettingsError("timestamp_style must be 'iso' or 'space'")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port {self.port} is out of range")
        if not 0 <= self.bridge_port <= 65535:
            raise SettingsError(f"bridge_port {self.bridge_port} is out of range")
        if self.token_lifetime <= 0:
            raise SettingsError("token_lifetime must be a positive number of seconds")
        if self.media_url_lifetime <= 0:
            raise SettingsError("media_url_lifetime must be a positive number of seconds")
        if self.webhook_profile not in PROFILES:
            raise SettingsError(f"webhook_profile must be {one_of(PROFILES)}")
        if self.signature_variant not in SETTABLE_SIGNATURE_VARIANTS:
            raise SettingsError(f"signature_variant must be {one_of(SETTABLE_SIGNATURE_VARIANTS)}")
        if not 0 <= self.duplicate_rate <= 1:
            raise SettingsError("duplicate_rate must be between 0 and 1")
        if not 0 <= self.reorder_window <= 3600:
            raise SettingsError("reorder_window must be between 0 and 3600 seconds")
        for name, high in CHAOS_LIMITS.items():
            if not 0 <= getattr(self, name) <= high:
                raise SettingsError(f"{name} must be between 0 and {high:g}")
        if self.request_timeout <= 0 or self.idle_timeout <= 0:
            raise SettingsError("request_timeout and idle_timeout must be positive")
        if self.webhook_timeout <= 0 or self.webhook_concurrency < 1:
            raise SettingsError("webhook_timeout and webhook_concurrency must be positive")
        if self.max_webhooks_per_client < 1:
            raise SettingsError("max_webhooks_per_client must be at least 1")
        if self.rate_limit not in RATE_LIMITS:
            raise SettingsError(
                f"rate_limit must be {one_of(RATE_LIMITS)}, not {self.rate_limit!r}"
            )
        if not abs(self.clock_skew) <= MAX_SKEW:
            raise SettingsError(f"clock_skew must be within ±{MAX_SKEW} seconds")
        for name in self.allowed_hosts:
            if not name or any(c in name for c in "/@ ") or name.count(":") == 1:
                raise SettingsError(
                    f"allowed_hosts lists bare host names or IP addresses (no scheme, port or "
                    f"path), not {name!r}"
                )
        if not 1 <= self.dealers <= 1000 or not 0 <= self.sites_per_dealer <= 1000:
            raise SettingsError("dealers must be 1..1000 and sites_per_dealer 0..1000")
        for client in self.clients:
            if (client.client_secret or "").startswith(LIVE_PREFIX) or client.client_id.startswith(
                LIVE_PREFIX
            ):
                raise SettingsError(
                    f"client {client.client_id!r} has a chekt_live_ secret: the sandbox never "
                    "accepts production credentials; use a test secret"
                )
            if client.kind not in CLIENT_KINDS:
                raise SettingsError(
                    f"client {client.client_id!r}: kind must be one of {', '.join(CLIENT_KINDS)}"
                )
            if client.kind == "dealer_app" and len(client.dealer_ids) != 1:
                raise SettingsError(
                    f"client {client.client_id!r}: a dealer_app reaches exactly one dealer"
                )
        for key in self.api_keys:
            if key.key.startswith(LIVE_PREFIX):
                raise SettingsError(
                    "an api_keys entry is a chekt_live_ key: the sandbox never accepts production "
                    "credentials; remove it and use a chekt_test_ key"
                )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    import yaml  # only a settings file needs it

    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: the top level must be a mapping of settings")
    return data


def _key_files_beside(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A settings file names its clients' key files relative to itself, so it works from
    whatever directory the sandbox is started in."""
    clients = data.get("clients")
    if isinstance(clients, list):
        data["clients"] = [
            {**item, "public_key_file": str(folder / item["public_key_file"])}
            if isinstance(item, dict) and isinstance(item.get("public_key_file"), str)
            else item
            for item in clients
        ]
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(Settings)} - {"clients", "api_keys", "faults"}
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in names:
                values[name] = raw
    return values


_INTS = {
    "port",
    "bridge_port",
    "seed",
    "token_lifetime",
    "media_url_lifetime",
    "idempotency_ttl",
    "dealers",
    "sites_per_dealer",
    "code_lifetime",
    "webhook_concurrency",
    "journal_entries",
    "journal_bytes",
    "max_body",
    "max_headers",
    "max_webhooks_per_client",
    "webhook_burst",
    "webhook_oversize",
}
_FLOATS = {
    "webhook_timeout",
    "duplicate_rate",
    "reorder_window",
    "webhook_slow_send_ms",
    "webhook_unknown_types",
    "webhook_extra_fields",
    "request_timeout",
    "idle_timeout",
    "clock_skew",
}
_BOOLS = {
    "bridge",
    "allow_private_destinations",
    "tls",
    "check_responses",
    "login_hint_off_loopback",
}


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name == "clients":
        return tuple(_client(item, source) for item in _records(name, raw, source))
    if name == "api_keys":
        return tuple(_api_key(item, source) for item in _records(name, raw, source))
    if name == "faults":
        return tuple(_fault(i, item, source) for i, item in enumerate(_records(name, raw, source)))
    if name in _FLOATS:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: {name} must be a number, not {raw!r}") from None
    if name in ("extra_audiences", "callback_events", "allowed_hosts"):
        items = raw.split(",") if isinstance(raw, str) else raw
        return tuple(str(item).strip() for item in items if str(item).strip())
    if name in _BOOLS:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes", "on"):
            return True
        if str(raw).lower() in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{source}: {name} must be true or false, not {raw!r}")
    if name in _INTS:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: {name} must be an integer, not {raw!r}") from None
    if raw is None:
        return None
    return str(raw)


def _records(name: str, raw: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise SettingsError(f"{source}: {name} must be a list of mappings")
    return raw


def _scopes(raw: Any, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    items = raw.split() if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(s, str) for s in items):
        raise SettingsError(f"{where}: scopes must be a list or a space-separated string")
    return tuple(items)


def _client(item: dict[str, Any], source: str) -> ClientSpec:
    where = f"{source}: clients[{item.get('client_id', '?')}]"
    allowed = {f.name for f in dataclasses.fields(ClientSpec)}
    _check_keys(item, allowed, where)
    if not isinstance(item.get("client_id"), str) or not item["client_id"]:
        raise SettingsError(f"{where}: client_id is required (a string)")
    keyed = any(item.get(k) for k in ("public_key", "public_key_file", "jwks_url"))
    secret = item.get("client_secret")
    if secret is not None and not isinstance(secret, str):
        raise SettingsError(f"{where}: client_secret must be a string")
    if not secret and not keyed and not item.get("public"):
        raise SettingsError(
            f"{where}: client_secret is required (or public: true, or a public_key / "
            "public_key_file / jwks_url for assertion tokens)"
        )
    for listed in ("redirect_uris", "logout_urls"):
        value = item.get(listed, [])
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise SettingsError(f"{where}: {listed} must be a list of URLs")
    dealer_ids = item.get("dealer_ids", ())
    if not isinstance(dealer_ids, list | tuple) or not all(isinstance(d, int) for d in dealer_ids):
        raise SettingsError(f"{where}: dealer_ids must be a list of integers")
    return ClientSpec(
        client_id=item["client_id"],
        client_secret=secret or None,
        kind=str(item.get("kind", "platform_partner")),
        dealer_ids=tuple(dealer_ids),
        scopes=_scopes(item.get("scopes"), where),
        name=item.get("name"),
        redirect_uris=tuple(item.get("redirect_uris", ())),
        logout_urls=tuple(item.get("logout_urls", ())),
        public=bool(item.get("public", False)),
        public_key=item.get("public_key"),
        public_key_file=item.get("public_key_file"),
        jwks_url=item.get("jwks_url"),
        key_id=item.get("key_id"),
    )


def _api_key(item: dict[str, Any], source: str) -> ApiKeySpec:
    where = f"{source}: api_keys[{item.get('name', '?')}]"
    _check_keys(item, {f.name for f in dataclasses.fields(ApiKeySpec)}, where)
    if not isinstance(item.get("key"), str):
        raise SettingsError(f"{where}: key is required (a string)")
    if not isinstance(item.get("dealer_id"), int):
        raise SettingsError(f"{where}: dealer_id is required (an integer)")
    return ApiKeySpec(
        key=item["key"],
        dealer_id=item["dealer_id"],
        scopes=_scopes(item.get("scopes"), where),
        name=item.get("name"),
    )


def _fault(index: int, item: dict[str, Any], source: str) -> FaultSpec:
    try:
        return parse_rule(item)
    except RuleError as exc:
        raise SettingsError(f"{source}: faults[{index}].{exc.field}: {exc}") from None


def _check_keys(item: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in item:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise SettingsError(f"{where}: unknown field {key!r}{tip}")
