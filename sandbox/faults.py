"""Inbound fault rules: which requests a rule strikes (method, path glob, client, auth tier,
surface) and what it does to them (latency, an error status, a dropped connection, an empty,
truncated or malformed body), how often (a seeded probability) and how many times.

Pure data and arithmetic, so the settings file, the control API, the scenario loader and the
middleware that applies the rules (:mod:`sandbox.api.faults`) all read one definition. Each
rule draws from its own generator seeded with ``settings.seed`` and its number, so the same
rules and the same traffic strike the same requests on every run.
"""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# the surfaces a rule can name; /_sandbox (control) is never faulted
Surface = Literal["partner", "apps", "dealer", "auth"]
SURFACES: tuple[Surface, ...] = get_args(Surface)
_PREFIXES: tuple[tuple[str, Surface], ...] = (
    ("/partner/", "partner"),
    ("/v1/", "apps"),
    ("/ext/v1/", "dealer"),
    ("/oauth/", "auth"),
    ("/authorize", "auth"),
    ("/.well-known/", "auth"),
    ("/v2/logout", "auth"),
)
RETRY_STATUSES = (429, 503)  # the statuses that carry Retry-After
MAX_LATENCY_MS = 60_000.0
FIELDS = (
    "method",
    "path",
    "client_id",
    "tier",
    "surface",
    "status",
    "retry_after",
    "latency_ms",
    "drop",
    "truncate",
    "empty",
    "malformed_json",
    "processed",
    "probability",
    "count",
)


class RuleError(ValueError):
    """A fault rule that cannot work: ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def surface_of(path: str) -> str | None:
    """The surface a path belongs to; ``control`` for /_sandbox, None for anything else."""
    if path.startswith("/_sandbox"):
        return "control"
    return next((name for prefix, name in _PREFIXES if path.startswith(prefix)), None)


@dataclass(frozen=True)
class Latency:
    """``fixed`` ms, ``uniform`` between ``low`` and ``high`` ms, or ``lognormal`` around a
    ``median`` ms with shape ``sigma``; every draw capped at MAX_LATENCY_MS."""

    kind: Literal["fixed", "uniform", "lognormal"]
    low: float = 0.0
    high: float = 0.0

    def draw(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            value = rng.uniform(self.low, self.high)
        elif self.kind == "lognormal":
            value = rng.lognormvariate(math.log(self.low), self.high)
        else:
            value = self.low
        return min(value, MAX_LATENCY_MS)

    def view(self) -> Any:
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            return {"min": self.low, "max": self.high}
        return {"median": self.low, "sigma": self.high}


@dataclass(frozen=True)
class FaultSpec:
    """One rule as written: ``None`` matches anything / does nothing."""

    method: str | None = None
    path: str | None = None  # a glob, e.g. /partner/v1/dealers/*/sites
    client_id: str | None = None
    tier: str | None = None  # the journal's tier: api_key, secret, assertion, user
    surface: str | None = None
    status: int | None = None
    retry_after: int | None = None
    latency: Latency | None = None
    drop: bool = False
    truncate: float | None = None  # share of the body sent before hanging up
    empty: bool = False
    malformed_json: bool = False
    processed: bool = False  # the request is handled before the fault strikes
    probability: float = 1.0
    count: int | None = None  # fires at most this many times

    def matches(self, method: str, path: str, surface: str | None) -> bool:
        """The cheap half of matching (who is calling is asked only when this passes)."""
        return (
            (self.method is None or self.method == method)
            and (self.surface is None or self.surface == surface)
            and (self.path is None or fnmatch.fnmatchcase(path, self.path))
        )

    @property
    def needs_caller(self) -> bool:
        return self.client_id is not None or self.tier is not None

    @property
    def mangles(self) -> bool:
        """Whether the rule changes the handler's own response (so it must run first)."""
        return self.truncate is not None or self.empty or self.malformed_json

    def effects(self) -> str:
        parts = []
        if self.latency is not None:
            parts.append(f"latency {self.latency.view()} ms")
        if self.status is not None:
            parts.append(f"status {self.status}")
        for name in ("drop", "empty", "malformed_json"):
            if getattr(self, name):
                parts.append(name)
        if self.truncate is not None:
            parts.append(f"truncate {self.truncate:g}")
        return ", ".join(parts)

    def view(self) -> dict[str, Any]:
        """The rule as the control API shows it (only what was set)."""
        shown: dict[str, Any] = {}
        for name in FIELDS:
            if name == "latency_ms":
                if self.latency is not None:
                    shown[name] = self.latency.view()
                continue
            value = getattr(self, name)
            if value is not None and value is not False:
                shown[name] = value
        return shown


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise RuleError(name, f"{name} must be true or false")
    return value


def _number(raw: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RuleError(name, f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
        raise RuleError(name, f"{name} must be a non-empty string (at most 200 characters)")
    return value


def _latency(raw: Any) -> Latency | None:
    name = "latency_ms"
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if not 0 <= raw <= MAX_LATENCY_MS:
            raise RuleError(name, f"latency_ms must be from 0 to {MAX_LATENCY_MS:g}")
        return Latency("fixed", float(raw))
    if isinstance(raw, Mapping) and set(raw) == {"min", "max"}:
        low, high = _number(raw, "min", 0, MAX_LATENCY_MS), _number(raw, "max", 0, MAX_LATENCY_MS)
        if low is None or high is None or low > high:
            raise RuleError(name, "latency_ms {min, max}: two numbers, min at most max")
        return Latency("uniform", low, high)
    if isinstance(raw, Mapping) and set(raw) == {"median", "sigma"}:
        median = _number(raw, "median", 0.001, MAX_LATENCY_MS)
        sigma = _number(raw, "sigma", 0, 5)
        if median is None or sigma is None:
            raise RuleError(name, "latency_ms {median, sigma}: median ms > 0, sigma 0 to 5")
        return Latency("lognormal", median, sigma)
    raise RuleError(
        name,
        "latency_ms is a number of ms, {min, max} (uniform) or {median, sigma} (log-normal)",
    )


def _truncate(raw: Any) -> float | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return 0.5
    if isinstance(raw, int | float) and not isinstance(raw, bool) and 0 <= raw < 1:
        return float(raw)
    raise RuleError("truncate", "truncate is true (half the body) or the share sent, 0 to <1")


def parse_rule(raw: Any, tiers: tuple[str, ...] | None = None) -> FaultSpec:
    """A rule from its JSON/YAML form, or a RuleError naming the field at fault. ``tiers``:
    the tier names a rule may match (checked when given)."""
    if not isinstance(raw, Mapping):
        raise RuleError("inbound", "each inbound rule is an object")
    for name in raw:
        if name not in FIELDS:
            raise RuleError(str(name), f"unknown fault field {name!r}; use {', '.join(FIELDS)}")
    method = _text(raw, "method")
    surface = _text(raw, "surface")
    if surface is not None and surface not in SURFACES:
        raise RuleError("surface", f"surface must be one of {', '.join(SURFACES)}")
    path = _text(raw, "path")
    if path is not None and not path.startswith("/"):
        raise RuleError("path", "path is a glob starting with /, e.g. /partner/v1/*")
    tier = _text(raw, "tier")
    if tier is not None and tiers is not None and tier not in tiers:
        raise RuleError("tier", f"tier must be one of {', '.join(tiers)}")
    status = raw.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
    ):
        raise RuleError("status", "status must be an error status from 400 to 599")
    retry = _number(raw, "retry_after", 0, 86_400)
    if retry is not None and status not in RETRY_STATUSES:
        raise RuleError("retry_after", "retry_after goes with status 429 or 503")
    if retry is None and status in RETRY_STATUSES:
        retry = 1.0
    probability = _number(raw, "probability", 0, 1)
    count = raw.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise RuleError("count", "count must be a whole number of at least 1")
    spec = FaultSpec(
        method=method.upper() if method else None,
        path=path,
        client_id=_text(raw, "client_id"),
        tier=tier,
        surface=surface,
        status=status,
        retry_after=None if retry is None else math.ceil(retry),
        latency=_latency(raw.get("latency_ms")),
        drop=_flag(raw, "drop"),
        truncate=_truncate(raw.get("truncate")),
        empty=_flag(raw, "empty"),
        malformed_json=_flag(raw, "malformed_json"),
        processed=_flag(raw, "processed"),
        probability=1.0 if probability is None else probability,
        count=count,
    )
    _one_outcome(spec)
    return spec


def _one_outcome(spec: FaultSpec) -> None:
    """A rule answers one way: an error, a drop, or one change to the real response."""
    outcomes = [
        name
        for name, on in (
            ("status", spec.status is not None),
            ("drop", spec.drop),
            ("truncate", spec.truncate is not None),
            ("empty", spec.empty),
            ("malformed_json", spec.malformed_json),
        )
        if on
    ]
    if len(outcomes) > 1:
        raise RuleError(outcomes[1], f"pick one of {' and '.join(outcomes)} per rule")
    if not outcomes and spec.latency is None:
        raise RuleError(
            "inbound",
            "a rule needs an effect: latency_ms, status, drop, truncate, empty or malformed_json",
        )


@dataclass
class Rule:
    """A rule in force: its spec, its id, its generator and how often it matched and fired."""

    id: str
    spec: FaultSpec
    rng: random.Random
    matched: int = 0
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.spec.count is not None and self.fired >= self.spec.count

    def view(self) -> dict[str, Any]:
        remaining = None if self.spec.count is None else self.spec.count - self.fired
        return {
            "id": self.id,
            **self.spec.view(),
            "matched": self.matched,
            "fired": self.fired,
            "remaining": remaining,
        }


@dataclass(frozen=True)
class Strike:
    """What one request gets: the rule and the latency drawn for it."""

    rule: Rule
    delay_ms: float

    @property
    def spec(self) -> FaultSpec:
        return self.rule.spec

    def mark(self) -> str:
        """How the journal marks the request."""
        return f"{self.rule.id}: {self.spec.effects()}"


@dataclass
class InboundFaults:
    """The rules in force, in the order they were added: the first that fires wins."""

    seed: int
    rules: list[Rule] = field(default_factory=list)
    _numbered: int = 0

    def add(self, spec: FaultSpec) -> Rule:
        self._numbered += 1
        rule = Rule(f"flt_{self._numbered}", spec, random.Random(f"{self.seed}/{self._numbered}"))
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        kept = [r for r in self.rules if r.id != rule_id]
        found = len(kept) != len(self.rules)
        self.rules = kept
        return found

    def clear(self) -> None:
        self.rules = []
        self._numbered = 0

    def strike(self, method: str, path: str, surface: str | None, caller: Any) -> Strike | None:
        """The fault for this request, if a rule fires. ``caller()`` gives (client_id, tier),
        asked at most once and only for a rule that names either."""
        who: tuple[str | None, str | None] | None = None
        for rule in self.rules:
            spec = rule.spec
            if rule.spent or not spec.matches(method, path, surface):
                continue
            if spec.needs_caller:
                who = caller() if who is None else who
                if spec.client_id not in (None, who[0]) or spec.tier not in (None, who[1]):
                    continue
            rule.matched += 1
            if spec.probability < 1 and rule.rng.random() >= spec.probability:
                continue
            rule.fired += 1
            delay = spec.latency.draw(rule.rng) if spec.latency is not None else 0.0
            return Strike(rule, delay)
        return None
