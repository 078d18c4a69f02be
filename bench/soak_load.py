"""The soak's load (``bench/soak.py``): the receiver that fails a share of attempts,
the paced event stream and the steady Partner API load."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from run import HOST, BenchError, access_token, get_json

EMIT_RATE = 50.0  # events per second
API_RATE = 20.0  # Partner API requests per second
FAIL_SHARE = 0.30  # of the receiver's answers: 500 or no answer at all
DROP_SHARE = 0.10  # ... of which this share of all attempts is a dropped connection
TOKEN_REFRESH_S = 600.0  # a fresh OAuth token this often (its lifetime is an hour)
SEED = 18
DEALER = "/partner/v1/dealers/1001"


# ---- the webhook receiver (bench/soak.py runs it as a child with --receiver PORT) ----------


def receiver_main(port: int) -> None:
    """Fail FAIL_SHARE of attempts at random (a 500, or the connection closed unanswered),
    answer 200 otherwise; count what came and which events got their 200."""
    import asyncio

    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    rng = random.Random(SEED)
    counts = {"attempts": 0, "ok": 0, "failed": 0, "dropped": 0}
    delivered: set[str] = set()

    async def hook(request: web.Request) -> web.StreamResponse:
        await request.read()
        counts["attempts"] += 1
        roll = rng.random()
        if roll < DROP_SHARE:
            counts["dropped"] += 1
            if request.transport is not None:
                request.transport.abort()  # no answer at all: the sender sees a reset
            raise asyncio.CancelledError  # aiohttp ends the handler without writing
        if roll < FAIL_SHARE:
            counts["failed"] += 1
            return web.Response(status=500, text="soak: a failed attempt")
        counts["ok"] += 1
        delivered.add(request.headers.get("X-CHeKT-Event-Id", ""))
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**counts, "events": len(delivered)})

    app = web.Application()
    app.add_routes([web.post("/hook", hook), web.get("/stats", stats)])
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# ---- load: the event stream and the Partner API -----------------------------------------------


@dataclass
class Load:
    """What the load threads did; each counter is written by one thread only."""

    emitted: list[str] = field(default_factory=list)  # event ids, in order
    emit_errors: list[str] = field(default_factory=list)
    emit_lag_s: float = 0.0  # the most an emit call started behind its wall-time slot
    emit_ms: list[float] = field(default_factory=list)  # each emit call's duration
    api_requests: int = 0
    api_5xx: int = 0
    api_other: int = 0  # 4xx or a broken connection: a fault of the load, or a bug
    api_problems: list[str] = field(default_factory=list)  # the first few, for the report
    failure: list[BaseException] = field(default_factory=list)  # a thread that died

    def problem(self, text: str) -> None:
        if len(self.api_problems) < 10:
            self.api_problems.append(text)


def paced(
    stop: threading.Event, rate: float, step: Callable[[], None], late: Callable[[float], None]
) -> None:
    """Call ``step`` ``rate`` times a second on wall time until ``stop``; a slot missed is
    made up at once, and how late it started is reported to ``late``."""
    begin, k = time.monotonic(), 0
    while not stop.is_set():
        slot = begin + k / rate
        wait = slot - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        late(max(0.0, time.monotonic() - slot))
        step()
        k += 1


class Connection:
    """One kept-alive loopback connection, opened again after the server closes it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def call(
        self, method: str, path: str, headers: dict[str, str], body: str | None = None
    ) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()


def emitter(port: int, load: Load, stop: threading.Event, seed: int) -> Callable[[], None]:
    """The event stream: one random event per call, its seed drawn from ``seed``."""
    # an odd multiplier mod 2^31 maps distinct counts to distinct, scattered seeds
    seeds = ((seed + 1_000_003 * n) % (1 << 31) for n in itertools.count())
    conn = Connection(port)
    headers = {"Content-Type": "application/json"}

    def late(seconds: float) -> None:
        load.emit_lag_s = max(load.emit_lag_s, seconds)

    def step() -> None:
        # never the same seed twice: a seed drawn again draws the same snapshot ids (a 409)
        body = json.dumps({"random": 1, "seed": next(seeds)})
        started = time.perf_counter()
        try:
            status, raw = conn.call("POST", "/_sandbox/events", headers, body)
        except (OSError, http.client.HTTPException) as exc:
            load.emit_errors.append(f"POST /_sandbox/events: {exc!r}")
            return
        if status != 202:
            load.emit_errors.append(f"POST /_sandbox/events answered {status}: {raw[:300]!r}")
            return
        load.emitted.extend(json.loads(raw)["event_ids"])
        load.emit_ms.append((time.perf_counter() - started) * 1000)

    def run() -> None:
        try:
            paced(stop, EMIT_RATE, step, late)
        except BaseException as exc:  # reported by the main thread, which stops the soak
            load.failure.append(exc)
        finally:
            conn.close()

    return run


@dataclass
class Credentials:
    """What the API load sends: the seeded API key, an OAuth token renewed every
    TOKEN_REFRESH_S, and an Apps key."""

    port: int
    api_key: str
    client_id: str
    secret: str
    apps_key: str
    token: str = ""
    token_at: float = float("-inf")

    def jwt(self) -> str:
        if time.monotonic() - self.token_at > TOKEN_REFRESH_S:
            self.token = access_token(self.port, self.client_id, self.secret)
            self.token_at = time.monotonic()
        return self.token


def api_calls(port: int, creds: Credentials) -> list[tuple[str, Callable[[], str]]]:
    """The GETs the API load cycles through, each with how to get its credential."""
    sites = get_json(port, f"{DEALER}/sites?limit=3", creds.api_key)
    if not sites:
        raise BenchError(f"GET {DEALER}/sites lists no site")
    calls: list[tuple[str, Callable[[], str]]] = [
        (f"{DEALER}/sites", lambda: creds.api_key),
        (f"{DEALER}/sites", creds.jwt),
        (f"{DEALER}/monitoring-stations", creds.jwt),
        ("/v1/alarms", lambda: creds.apps_key),
        ("/v1/events", lambda: creds.apps_key),
        ("/ext/v1/sites", lambda: creds.api_key),
    ]
    for site in sites:
        site_path = f"{DEALER}/sites/{site['site_id']}"
        calls += [(site_path, creds.jwt), (f"{site_path}/devices", lambda: creds.api_key)]
    return calls


def api_load(
    port: int, creds: Credentials, load: Load, stop: threading.Event
) -> Callable[[], None]:
    """The Partner API load: the ``api_calls`` in turn, API_RATE a second."""
    calls = api_calls(port, creds)
    conn = Connection(port)
    turn = itertools.count()

    def step() -> None:
        path, credential = calls[next(turn) % len(calls)]
        load.api_requests += 1
        try:
            status, raw = conn.call("GET", path, {"Authorization": f"Bearer {credential()}"})
        except (OSError, http.client.HTTPException) as exc:
            load.api_other += 1
            load.problem(f"GET {path}: {exc!r}")
            return
        if status >= 500:
            load.api_5xx += 1
            load.problem(f"GET {path} answered {status}: {raw[:300]!r}")
        elif not 200 <= status < 300:
            load.api_other += 1
            load.problem(f"GET {path} answered {status}: {raw[:300]!r}")

    def run() -> None:
        try:
            paced(stop, API_RATE, step, lambda _: None)
        except BaseException as exc:
            load.failure.append(exc)
        finally:
            conn.close()

    return run
