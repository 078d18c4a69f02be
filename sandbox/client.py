"""``Sandbox``: the sandbox as a Python object — a real server on a free port in a background
thread, and a thin client of its ``/_sandbox`` control API.

Everything here goes over HTTP to the same routes any other language would use, so the
Python API can never do something the control API cannot.

    with Sandbox(clock="virtual") as sandbox:
        sandbox.subscribe("http://127.0.0.1:9000/webhooks")
        sandbox.emit("alarm.created")
        sandbox.wait_for_delivery(outcome="delivered")
        sandbox.assert_called("GET", "/partner/v1/dealers/*/sites/*")
        sandbox.expect_alarm("A-10033", state="acknowledged", annotated=True, by="app")
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import ssl
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette

from sandbox.app import bridge_app, create_app
from sandbox.auth.assertions import ASSERTION_TYPE, algorithm_for, thumbprint
from sandbox.client_chaos import ChaosCalls
from sandbox.client_insights import InsightCalls
from sandbox.client_record import RecordCalls
from sandbox.clock import checked
from sandbox.errors import ExpectationFailed, SandboxError, SandboxServerError
from sandbox.logs import printable
from sandbox.server import ThreadedServer, bind, bind_bridge, tls_files, with_bridge
from sandbox.settings import Settings

__all__ = [
    "ExpectationFailed",
    "Sandbox",
    "SandboxError",
    "SandboxServerError",
    "describe_attempt",
]
ADVANCE_TIMEOUT = httpx.Timeout(30, read=None)  # advance answers once the server stepped there


@functools.cache
def public_cas() -> ssl.SSLContext:
    """What httpx checks a server's certificate with by default (the public CAs), loaded once
    per process rather than for every client: ~25 ms of CPU each time."""
    return httpx.create_ssl_context()


class Clock:
    """The sandbox clock, as seen through ``/_sandbox/clock``. A system clock is read here
    once it is known to be one (it is this machine's time): services call ``now`` for every
    webhook, and a round trip each would slow them down under load."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._system = False

    def now(self) -> float:
        if self._system:
            return time.time()
        state = self._sandbox.call("GET", "/_sandbox/clock")
        self._system = not state["virtual"]
        return float(state["now"])

    @property
    def virtual(self) -> bool:
        return bool(self._sandbox.call("GET", "/_sandbox/clock")["virtual"])

    def advance(self, seconds: float) -> float:
        """Move a virtual clock forward; returns once the deliveries that fell due on the way
        have their outcomes (the server bounds each step by ``webhook_timeout``)."""
        return self._move("/_sandbox/clock/advance", "seconds", seconds)

    def set(self, timestamp: float) -> float:
        return self._move("/_sandbox/clock/set", "now", timestamp)

    def _move(self, path: str, name: str, value: float) -> float:
        try:
            checked(value, name)  # NaN and infinities are not even JSON
        except ValueError as exc:
            raise ExpectationFailed(str(exc)) from None
        return float(
            self._sandbox.call("POST", path, {name: value}, timeout=ADVANCE_TIMEOUT)["now"]
        )


class Sandbox(RecordCalls, ChaosCalls, InsightCalls):
    """A sandbox of its own (``with Sandbox() as sandbox``) or one already running
    (:meth:`connect`); its record half (alarms, audit, ``expect_alarm``) is
    :class:`~sandbox.client_record.RecordCalls`, its failure half (faults, rate limits, auth
    chaos) :class:`~sandbox.client_chaos.ChaosCalls`, its judging half (report card,
    coverage) :class:`~sandbox.client_insights.InsightCalls`."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        base = settings or Settings(db=":memory:")
        self.settings = dataclasses.replace(base, **{"port": 0, "bridge_port": 0, **overrides})
        self.settings.validate()
        self.app: Starlette | None = None
        self.url = ""
        self.bridge_url: str | None = None  # the bridges' local API, when it serves
        self.clock = Clock(self)
        self._server: ThreadedServer | None = None
        self._bridge: ThreadedServer | None = None
        self._http: httpx.Client | None = None
        self._reported = 0

    # ---- life cycle ------------------------------------------------------------------------

    @classmethod
    def connect(cls, url: str, admin_token: str | None = None) -> Sandbox:
        """A client of a sandbox that is already running elsewhere (not started or stopped
        by this object)."""
        sandbox = cls()
        sandbox.url = url.rstrip("/")
        headers = {"X-Sandbox-Admin-Token": admin_token} if admin_token else {}
        verify = public_cas() if sandbox.url.startswith("https:") else False
        sandbox._http = httpx.Client(
            base_url=sandbox.url, timeout=30, headers=headers, verify=verify
        )
        return sandbox

    def start(self, timeout: float = 10.0) -> Sandbox:
        sock = bind(self.settings.host, 0)  # the port is known before the app is built
        settings = self.settings.with_port(sock.getsockname()[1])
        try:
            bridge_sock = bind_bridge(settings)
        except BaseException:
            sock.close()
            raise
        settings = with_bridge(settings, bridge_sock)
        try:
            self.app = create_app(settings)
        except BaseException:
            sock.close()
            if bridge_sock is not None:
                bridge_sock.close()
            raise
        tls = tls_files(settings) if settings.tls else None
        self.app.state.tls = tls
        self._server = ThreadedServer(
            self.app,
            host=settings.host,
            sock=sock,
            tls=tls,
            settings=settings,
        )
        if bridge_sock is not None:
            self._bridge = ThreadedServer(
                bridge_app(self.app), host=settings.host, sock=bridge_sock, settings=settings
            )
        try:
            self.url = self._server.start(timeout)
            if self._bridge is not None:
                self.bridge_url = self.app.state.bridge_url = self._bridge.start(timeout)
        except RuntimeError as exc:
            self.stop()
            raise SandboxServerError("the sandbox server did not start") from exc
        # plain http has no certificate to check (loading the public CAs costs ~25 ms)
        verify = ssl.create_default_context(cafile=tls.ca_cert) if tls else False
        self._http = httpx.Client(base_url=self.url, timeout=30, verify=verify)
        return self

    def stop(self) -> None:
        """Stop the server and close what it held; re-raise here anything that failed inside
        it."""
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
            self.bridge_url = None
        if self._server is not None:
            self._server.stop()
            self._server = None
            assert self.app is not None
            self.app.state.services.close()
        if self._http is not None:
            self._http.close()
        self.raise_errors()

    def __enter__(self) -> Sandbox:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def server_errors(self) -> list[BaseException]:
        if self.app is None:
            return []
        services = self.app.state.services
        return [*self.app.state.server_errors, *services.dispatcher.errors]

    def raise_errors(self) -> None:
        """Raise the first server-side failure not reported yet."""
        errors = self.server_errors()
        fresh = errors[self._reported :]
        self._reported = len(errors)
        if fresh:
            raise SandboxServerError(f"the sandbox failed while serving: {fresh[0]!r}") from fresh[
                0
            ]

    # ---- control calls ---------------------------------------------------------------------

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """``path`` requested over this object's connection (``options`` as for httpx), and
        its answer as it came, a 4xx included: the scenario runner's calls as a partner."""
        if self._http is None:
            raise ExpectationFailed("the sandbox is not running; use it as a context manager")
        try:
            return self._http.request(method, path, **options)
        except httpx.TransportError as exc:
            raise ExpectationFailed(f"cannot reach the sandbox at {self.url}: {exc}") from exc

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        response = self.request(
            method, path, json=body, params=params, timeout=timeout or httpx.USE_CLIENT_DEFAULT
        )
        if response.status_code >= 400:
            raise ExpectationFailed(
                f"{method} {path}: {response.status_code} {_error_text(response)}"
            )
        return response.json() if response.content else None

    @property
    def credentials(self) -> dict[str, Any]:
        return dict(self.call("GET", "/_sandbox/credentials"))

    @property
    def api_key(self) -> str:
        """The seeded dealer app's API key (dealer 1001 in the default world)."""
        return str(self.credentials["api_keys"][0]["key"])

    @property
    def partner(self) -> dict[str, Any]:
        """The seeded platform partner: ``client_id``, ``client_secret``, ``dealer_ids``."""
        partners = [c for c in self.credentials["clients"] if c["kind"] == "platform_partner"]
        # the seeded one, even when a registered client sorts before it
        return next((c for c in partners if c["origin"] == "seeded"), partners[0])

    def token(
        self, client_id: str | None = None, client_secret: str | None = None, **form: str
    ) -> str:
        """A client-credentials access token (the seeded platform partner's by default)."""
        if client_id is None:
            client_id, client_secret = self.partner["client_id"], self.partner["client_secret"]
        return self._token(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret or "",
                **form,
            }
        )

    def assertion_token(self, client_id: str, private_key: bytes, kid: str | None = None) -> str:
        """A token for an assertion (tier 3) client, signed as CHeKT's sample signs it:
        iss = sub = the client, aud = the issuer, 300 s on the sandbox clock, a fresh jti;
        ``kid`` defaults to the key's thumbprint (what ``keys new`` registers)."""
        try:
            key: Any = serialization.load_pem_private_key(private_key, None)
            algorithm = algorithm_for(key.public_key())
        except (ValueError, TypeError, AttributeError) as exc:
            raise ExpectationFailed(f"not a PEM RSA or EC private key: {exc}") from None
        now = int(self.clock.now())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": self.credentials["issuer"],
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        headers = {"kid": kid or thumbprint(key.public_key())}
        return self._token(
            {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": jwt.encode(claims, key, algorithm, headers=headers),
            }
        )

    def _token(self, form: dict[str, str]) -> str:
        response = self.request("POST", "/oauth/token", data=form)
        if response.status_code != 200:
            raise ExpectationFailed(f"token request refused: {response.text[:300]}")
        return str(response.json()["access_token"])

    def register_client(self, **fields: Any) -> dict[str, Any]:
        """Register an application (``POST /_sandbox/clients``): e.g. ``client_id``,
        ``kind``, ``dealer_ids``, ``scopes``, ``public_key`` (PEM) and ``key_id``."""
        return dict(self.call("POST", "/_sandbox/clients", fields))

    def reset(self, only: list[str] | None = None, seed: int | None = None) -> None:
        body: dict[str, Any] = {}
        if only is not None:
            body["only"] = only
        if seed is not None:
            body["seed"] = seed
        self.call("POST", "/_sandbox/reset", body or None)

    def subscribe(
        self,
        url: str,
        events: list[str] | None = None,
        secret: str | None = None,
        profile: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url}
        for name, value in (("events", events), ("secret", secret), ("profile", profile)):
            if value is not None:
                body[name] = value
        return dict(self.call("POST", "/_sandbox/subscriptions", body))

    def unsubscribe(self, webhook_id: str) -> None:
        self.call("DELETE", f"/_sandbox/subscriptions/{webhook_id}")

    def resend(self, event_id: str) -> list[str]:
        """Deliver an event again to every subscription that hears it; the new delivery ids."""
        return list(self.call("POST", f"/_sandbox/events/{event_id}/resend")["delivery_ids"])

    def emit(
        self,
        event_type: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        lifecycle: str | None = None,
        variant: str | None = None,
        random: int | None = None,
        rate: float | None = None,
        seed: int | None = None,
        types: list[str] | None = None,
    ) -> list[str]:
        """One event, a lifecycle (``lifecycle="alarm"``) or ``random=N`` events; the ids."""
        body: dict[str, Any] = {}
        for name, value in (
            ("type", event_type),
            ("data", data),
            ("lifecycle", lifecycle),
            ("variant", variant),
            ("random", random),
            ("rate", rate),
            ("seed", seed),
            ("types", types),
        ):
            if value is not None:
                body[name] = dict(value) if isinstance(value, Mapping) else value
        return list(self.call("POST", "/_sandbox/events", body)["event_ids"])

    def faults(
        self, duplicate_rate: float | None = None, reorder_window: float | None = None
    ) -> dict[str, float]:
        """Set the webhook fault knobs (duplicates, reordering); the two in force. The other
        webhook chaos (bursts, slow sending, oversized bodies, unknown types, extra fields):
        :meth:`webhook_chaos`; inbound rules: :meth:`fault`."""
        body = {
            k: v
            for k, v in (("duplicate_rate", duplicate_rate), ("reorder_window", reorder_window))
            if v is not None
        }
        answer = self.call("POST", "/_sandbox/faults", body)
        return {name: float(answer[name]) for name in ("duplicate_rate", "reorder_window")}

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """Journal entries (see ``GET /_sandbox/requests`` for the filters)."""
        params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in filters.items()}
        return list(self.call("GET", "/_sandbox/requests", params=params))

    def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.call("GET", "/_sandbox/deliveries", params=filters))

    # ---- waiting and asserting -------------------------------------------------------------

    def wait_for_delivery(self, timeout: float = 5.0, **filters: Any) -> dict[str, Any]:
        """The first webhook attempt matching ``filters`` (event_id, webhook_id, outcome)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries(**filters)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                recent = self.deliveries()[-5:]
                raise ExpectationFailed(
                    f"no delivery matching {filters} within {timeout} s; latest attempts: "
                    + "; ".join(f"{a['event_id']} {describe_attempt(a)}" for a in recent)
                )
            time.sleep(0.02)

    def wait_for_request(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        timeout: float = 5.0,
        **match: Any,
    ) -> dict[str, Any]:
        """The first request matching (see :meth:`assert_called`), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            hits = self._matching(method, path, match)
            if hits:
                return hits[0]
            if time.monotonic() > deadline:
                raise ExpectationFailed(
                    f"no {method or 'request'} {path or ''} matching {match or ''} within "
                    f"{timeout} s\n" + self._nearest(method, path, match)
                )
            time.sleep(0.02)

    def assert_called(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        times: int | None = None,
        **match: Any,
    ) -> list[dict[str, Any]]:
        """Assert the partner made such a request (``times`` exactly, if given).

        ``path`` is a glob; ``json`` a subset the request body must contain; ``headers`` and
        ``query`` dicts that must be present; ``status``, ``client_id``, ``trace_id`` exact."""
        hits = self._matching(method, path, match)
        if (times is None and not hits) or (times is not None and len(hits) != times):
            expected = "at least once" if times is None else f"{times} time(s)"
            raise ExpectationFailed(
                f"expected {method or 'a request'} {path or ''} {expected}, saw {len(hits)}\n"
                + self._nearest(method, path, match)
            )
        return hits

    def assert_not_called(
        self, method: str | None = None, path: str | None = None, **match: Any
    ) -> None:
        hits = self._matching(method, path, match)
        if hits:
            first = hits[0]
            raise ExpectationFailed(
                f"expected no {method or 'request'} {path or ''}, saw {len(hits)}; first: "
                + describe(first)
            )

    def _matching(
        self, method: str | None, path: str | None, match: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        return [e for e in self.requests() if not request_differences(e, method, path, match)]

    def _nearest(self, method: str | None, path: str | None, match: Mapping[str, Any]) -> str:
        entries = self.requests()
        if not entries:
            return "the journal is empty: nothing was called"
        ranked = sorted(entries, key=lambda e: len(request_differences(e, method, path, match)))[:5]
        lines = ["nearest recorded requests:"]
        for entry in ranked:
            diff = "; ".join(request_differences(entry, method, path, match))
            lines.append(f"  {describe(entry)}: {diff}")
        return "\n".join(lines)


def describe(entry: Mapping[str, Any]) -> str:
    """One journal entry on one line, its client-chosen path escaped for printing."""
    return printable(f"#{entry['seq']} {entry['method']} {entry['path']} -> {entry['status']}")


def describe_attempt(attempt: Mapping[str, Any]) -> str:
    """One webhook attempt on one line: the receiver's status and body, or why it gave none."""
    return f"#{attempt['attempt']} {attempt['outcome']}: {answer_of(attempt)}"


def answer_of(attempt: Mapping[str, Any]) -> str:
    """What the receiver said (status and body, clipped), or why it said nothing."""
    answer = attempt.get("response")
    if answer:
        body = " ".join(str(answer.get("body", "")).split())
        body = body if len(body) <= 200 else body[:199] + "…"
        return printable(f"{answer['status']} {body}".rstrip())
    error = str(attempt.get("error") or "no answer")
    if "refused" in error.lower() or "connect call failed" in error.lower():
        error = f"connection refused by {attempt.get('url') or 'the receiver'}"
    return printable(error)


def _error_text(response: httpx.Response) -> str:
    """The envelope's message (and field), or the raw text of a non-envelope answer."""
    try:
        error = response.json()["error"]
        field = f" (field {error['field']})" if "field" in error else ""
        return f"{error['message']}{field}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def _subset_problems(expected: Any, actual: Any, where: str) -> list[str]:
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{where or 'body'} is {actual!r}, not an object"]
        problems: list[str] = []
        for key, value in expected.items():
            path = f"{where}.{key}" if where else key
            if key not in actual:
                problems.append(f"{path} missing")
            else:
                problems += _subset_problems(value, actual[key], path)
        return problems
    return [] if expected == actual else [f"{where} is {actual!r}, expected {expected!r}"]


def request_differences(
    entry: Mapping[str, Any], method: str | None, path: str | None, match: Mapping[str, Any]
) -> list[str]:
    problems: list[str] = []
    if method is not None and entry["method"] != method.upper():
        problems.append(f"method {entry['method']} != {method.upper()}")
    if path is not None and not fnmatch.fnmatchcase(entry["path"], path):
        problems.append(printable(f"path {entry['path']} does not match {path}"))
    for name, wanted in match.items():
        if name == "json":
            problems += _subset_problems(wanted, entry["body"], "")
        elif name == "headers":
            have = {k.lower(): v for k, v in entry["headers"].items()}
            for key, value in wanted.items():
                if have.get(key.lower()) != value:
                    problems.append(f"header {key} is {have.get(key.lower())!r}, not {value!r}")
        elif name == "query":
            from urllib.parse import parse_qs

            have_query = {k: v[-1] for k, v in parse_qs(entry["query"]).items()}
            for key, value in wanted.items():
                if have_query.get(key) != str(value):
                    problems.append(f"query {key} is {have_query.get(key)!r}, not {value!r}")
        elif name in ("status", "client_id", "trace_id", "tier", "dealer_id", "surface"):
            if entry.get(name) != wanted:
                problems.append(f"{name} is {entry.get(name)!r}, not {wanted!r}")
        else:
            raise TypeError(
                f"unknown match {name!r}: use json, headers, query, status, "
                "client_id, trace_id, tier, dealer_id or surface"
            )
    return problems
