"""``make bench``: how close the sandbox's authenticated lists come to bare Starlette, and
how fast it serves a snapshot.

One run starts the sandbox (``chekt-sandbox serve --db :memory:``) and a bare Starlette app
(``bench/bare_app.py``) serving the very JSON the sandbox returned for each list, pins each
server to core 0 and wrk to core 1, and measures six rows with ``wrk -t1 -c32 --latency``
after a warm-up:

- the Partner API's sites list: the bare app, the sandbox with the seeded API key (target:
  ≥ 85 % of bare Starlette, in requests/s) and with a client-credentials JWT (≥ 80 %);
- the same list with the API key and CHeKT's rate limits on (a custom ceiling far above the
  load, so every request takes a token and none is refused; target: ≥ 90 % of the API key's
  requests/s with them off);
- the Apps API's ``GET /v1/alarms`` with an Apps key (``events:read``, dealer 1001): the bare
  app, then the sandbox (target: ≥ 85 % of bare Starlette, as the Partner list's API key);
- the dealer API's ``GET /ext/v1/sites`` with the seeded API key: the bare app, then the
  sandbox (target: ≥ 85 % of bare Starlette);
- a snapshot link taken from ``GET /v1/alarms/{id}``, already rendered and cached (target:
  ≥ 1,000 JPEG responses/s).

Each row also gives the server's CPU time per request (user + system time from
``/proc/<pid>/stat`` over the measured run, divided by the requests wrk completed) and, for
the sandbox, that cost against the bare app's: on a machine busy with other work, requests/s
fall with the time the server gets, but the CPU a request costs stays, so that ratio is the
steadier figure (the verdicts follow the issue: requests/s).

``--only dealer`` (or ``partner``, ``v1``, ``snapshot``; repeatable) measures only those rows.

Every server must answer 200 with the expected body before and after it is measured (so a
401 storm is never mistaken for speed), all load is time-bounded and on loopback, and every
child process is stopped on exit, errors and Ctrl-C. The table is also written to
``bench/results.md``. Exit status: 0 all PASS, 1 a target missed, 2 the benchmark failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SITES_PATH = "/partner/v1/dealers/1001/sites"
ALARMS_PATH = "/v1/alarms"
DEALER_PATH = "/ext/v1/sites"
GROUPS = ("partner", "v1", "dealer", "snapshot")  # the rows, in the order they are measured
APPS_KEY = {"dealer_id": 1001, "scopes": ["events:read"], "name": "make bench"}
SERVER_CORE = "0"
WRK_CORE = "1"
CONNECTIONS = 32
KEY_TARGET = 0.85  # an API key's list (Partner, /v1, /ext/v1): its share of bare Starlette
JWT_TARGET = 0.80  # the Partner list with a client-credentials JWT
LIMITED_SHARE = 0.90  # the Partner list with rate limits on, against it with them off
# rate limits on, with a ceiling no benchmark reaches: every request takes from the bucket
HIGH_CEILING = {"per_minute": 100_000_000, "burst": 10_000_000}
SNAPSHOT_TARGET = 1_000.0  # JPEG responses per second
JSON_TYPE = "application/json"
JPEG_TYPE = "image/jpeg"
# a media link's token: made anew per request once the stored one has expired
LINK_TOKEN = re.compile(r"access_token=[\w.-]+")
READY_TIMEOUT = 30.0
BUSY_WARNING = 0.10
SATURATED = 0.90
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class BenchError(RuntimeError):
    """The benchmark could not measure what it claims to; reported instead of a table."""


@dataclass(frozen=True)
class Expect:
    """What a benchmarked request must answer: ``json`` (with every link's token masked when
    ``tokens_vary``: the sandbox makes expired links anew per request), or exactly ``raw``."""

    content_type: str = JSON_TYPE
    json: Any = None
    tokens_vary: bool = False
    raw: bytes | None = None

    def problem(self, content_type: str, body: bytes) -> str | None:
        if content_type.split(";")[0].strip() != self.content_type:
            return f"Content-Type {content_type!r}, not {self.content_type}"
        if self.raw is not None:
            return None if body == self.raw else f"other bytes ({len(body):,} B)"
        try:
            value = json.loads(body)
        except ValueError:
            return "a body that is not JSON"
        if self.tokens_vary:
            value, expected = masked(value), masked(self.json)
        else:
            expected = self.json
        return None if value == expected else "a different JSON body"


def masked(value: Any) -> Any:
    """``value`` with each link's ``access_token`` replaced by a mark."""
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return LINK_TOKEN.sub("access_token=…", value)
    return value


@dataclass(frozen=True)
class Target:
    """One benchmarked request: what wrk hits, with which credential, and what it answers."""

    request: str  # what is measured, e.g. "Partner sites"
    label: str  # by which server and credential
    port: int
    path: str
    token: str | None
    pid: int  # the server's, to read its CPU time
    expect: Expect
    rate_limit: dict[str, int] | None = None  # the sandbox's rate limits while measured

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"


@dataclass(frozen=True)
class Result:
    """What wrk reported for one target."""

    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses plus socket errors; must be 0 for a valid row
    server_cpu: float = 0.0  # share of its core the server used: ~1.0 when undisturbed
    cpu_us: float = 0.0  # the server's CPU time per request, in microseconds
    request: str = ""


@dataclass(frozen=True)
class Row:
    """A result judged against its target: ``verdict`` is empty for a baseline."""

    result: Result
    ratio: float | None  # to the bare app serving the same request; None: no such row
    target: str
    verdict: str
    cpu_ratio: float | None = None  # the bare app's CPU per request over this row's


# ---- child processes -------------------------------------------------------------------------


def free_port() -> int:
    """Ask the kernel for an unused loopback port (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus CHEKT_SANDBOX_* overrides, so runs are comparable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEKT_SANDBOX_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def spawned(
    argv: Sequence[str], log: Path, env: dict[str, str], core: int | str = SERVER_CORE
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` pinned to ``core`` (the server's), and always stop it (Ctrl-C included)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", str(core), *argv],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
        )
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down cleanly), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def log_tail(log: Path, lines: int = 25) -> str:
    """The end of a server's output, to show why it failed."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    tail = text.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) or "    (no output)"


def wait_ready(proc: subprocess.Popen[bytes], port: int, path: str, log: Path, name: str) -> None:
    """Poll ``path`` until it answers 200; fail fast with the log if the process dies."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with status {proc.returncode} before it was ready:\n"
                + log_tail(log)
            )
        try:
            status, _ = request(port, "GET", path)
        except OSError as exc:
            last = str(exc)
        else:
            if status == 200:
                return
            last = f"HTTP {status}"
        time.sleep(0.1)
    raise BenchError(
        f"{name} was not ready after {READY_TIMEOUT:.0f} s (GET {path}: {last}):\n" + log_tail(log)
    )


# ---- HTTP on loopback ------------------------------------------------------------------------


def request(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, bytes]:
    """One loopback request; the status is returned, not raised, so callers can report it."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def fetch(port: int, path: str, token: str | None = None) -> tuple[int, str, bytes]:
    """GET ``path``: its status, Content-Type and body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def get_json(port: int, path: str, token: str | None = None) -> Any:
    """GET that must answer 200 with JSON; anything else is a precise BenchError."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, raw = request(port, "GET", path, headers=headers)
    if status != 200:
        raise BenchError(f"GET {path} on port {port} answered {status}: {raw[:500]!r}")
    try:
        return json.loads(raw)
    except ValueError:
        raise BenchError(f"GET {path} on port {port} answered 200 but not JSON") from None


def sandbox_credentials(port: int) -> tuple[str, str, str]:
    """The seeded API key and the platform partner's client id and secret."""
    creds = get_json(port, "/_sandbox/credentials")
    if not creds.get("api_keys"):
        raise BenchError("/_sandbox/credentials lists no API key")
    partner = next((c for c in creds["clients"] if c["kind"] == "platform_partner"), None)
    if partner is None:
        raise BenchError("/_sandbox/credentials lists no platform_partner client")
    return creds["api_keys"][0]["key"], partner["client_id"], partner["client_secret"]


def access_token(port: int, client_id: str, secret: str) -> str:
    """A JWT from the client-credentials grant (same Host as wrk, so the issuer matches)."""
    form = urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, raw = request(port, "POST", "/oauth/token", headers=headers, body=form)
    if status != 200:
        raise BenchError(f"POST /oauth/token answered {status}: {raw[:500]!r}")
    token: str = json.loads(raw)["access_token"]
    return token


def apps_key(port: int) -> str:
    """A new Apps API key for dealer 1001 that may read alarms."""
    headers = {"Content-Type": JSON_TYPE}
    status, raw = request(
        port, "POST", "/_sandbox/api-keys", headers=headers, body=json.dumps(APPS_KEY)
    )
    if status != 201:
        raise BenchError(f"POST /_sandbox/api-keys answered {status}: {raw[:500]!r}")
    key: str = json.loads(raw)["key"]
    return key


def snapshot_link(port: int, alarms: Any, key: str) -> str:
    """The path and query of the snapshot link ``GET /v1/alarms/{id}`` hands out for the
    newest listed alarm that has one."""
    alarm = next((a for a in alarms if a.get("snapshot_url")), None)
    if alarm is None:
        raise BenchError(f"no alarm in GET {ALARMS_PATH} has a snapshot_url")
    url = get_json(port, f"{ALARMS_PATH}/{alarm['alarm_id']}", key)["snapshot_url"]
    parts = urlsplit(url)
    if not parts.path.endswith(".jpg") or "access_token=" not in parts.query:
        raise BenchError(f"alarm {alarm['alarm_id']}: snapshot_url is not a signed .jpg: {url}")
    return f"{parts.path}?{parts.query}"


def verify(target: Target) -> None:
    """The benchmarked request itself must answer 200 with what it is expected to."""
    status, content_type, body = fetch(target.port, target.path, target.token)
    problem = (
        f"status {status}: {body[:300]!r}"
        if status != 200
        else target.expect.problem(content_type, body)
    )
    if problem is not None:
        raise BenchError(f"{target.label}: GET {target.path[:80]} answered {problem}")


# ---- wrk -------------------------------------------------------------------------------------


def run_wrk(target: Target, seconds: int) -> str:
    """One time-bounded wrk run pinned to the load core; returns its report."""
    auth = ["-H", f"Authorization: Bearer {target.token}"] if target.token else []
    argv = [
        "taskset", "-c", WRK_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s",
        "--latency", *auth, target.url,
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30} s on {target.url}") from None
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done.stdout


def _ms(report: str, percentile: str) -> float:
    """A latency percentile in ms (wrk picks its own unit per value)."""
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", report, re.MULTILINE)
    if found is None:
        raise BenchError(f"no {percentile}% latency in wrk's report:\n{report}")
    return float(found.group(1)) * UNITS_MS[found.group(2)]


def parse_wrk(label: str, report: str) -> Result:
    """Requests/s, p50, p99 and error counts out of wrk's text report."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", report, re.MULTILINE)
    if rps is None:
        raise BenchError(f"no Requests/sec in wrk's report:\n{report}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", report)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return Result(label, float(rps.group(1)), _ms(report, "50"), _ms(report, "99"), errors)


def completed(report: str) -> int:
    """How many requests wrk completed."""
    found = re.search(r"^\s*(\d+) requests in", report, re.MULTILINE)
    if found is None:
        raise BenchError(f"no request count in wrk's report:\n{report}")
    return int(found.group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0.0 where there is no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def set_rate_limit(port: int, body: dict[str, Any]) -> None:
    headers = {"Content-Type": JSON_TYPE}
    status, raw = request(
        port, "POST", "/_sandbox/rate-limits", headers=headers, body=json.dumps(body)
    )
    if status != 200:
        raise BenchError(f"POST /_sandbox/rate-limits answered {status}: {raw[:300]!r}")


@contextlib.contextmanager
def rate_limited(target: Target) -> Iterator[None]:
    """The target's rate limits on while it is measured (and checked to be on), then off."""
    if target.rate_limit is None:
        yield
        return
    set_rate_limit(target.port, target.rate_limit)
    try:
        conn = http.client.HTTPConnection(HOST, target.port, timeout=10)
        try:
            conn.request("GET", target.path, headers={"Authorization": f"Bearer {target.token}"})
            limit = conn.getresponse().getheader("X-RateLimit-Limit")
        finally:
            conn.close()
        if limit != str(target.rate_limit["per_minute"]):
            raise BenchError(f"{target.label}: rate limits are not on (X-RateLimit-Limit {limit})")
        yield
    finally:
        set_rate_limit(target.port, {"tier": "off"})


def measure(target: Target, seconds: int, warmup: int) -> Result:
    with rate_limited(target):
        return _measure(target, seconds, warmup)


def _measure(target: Target, seconds: int, warmup: int) -> Result:
    """Verify, warm up, measure, then verify again (a mid-run breakdown voids the row).

    The server's CPU share while measured tells a saturated, undisturbed server (~100 %)
    from one that shared its core with other load.
    """
    verify(target)
    print(
        f"  {target.request}, {target.label}: warm-up {warmup} s, measuring {seconds} s ...",
        flush=True,
    )
    run_wrk(target, warmup)
    cpu, started = cpu_seconds(target.pid), time.monotonic()
    report = run_wrk(target, seconds)
    used = cpu_seconds(target.pid) - cpu
    share = used / (time.monotonic() - started)
    verify(target)
    result = parse_wrk(target.label, report)
    per_request = used / max(completed(report), 1) * 1e6
    return dataclasses.replace(result, server_cpu=share, cpu_us=per_request, request=target.request)


# ---- report ----------------------------------------------------------------------------------


def _share(result: Result, bare: Result) -> float:
    return result.rps / bare.rps if bare.rps else 0.0


def _cpu_share(result: Result, bare: Result) -> float | None:
    return bare.cpu_us / result.cpu_us if result.cpu_us and bare.cpu_us else None


def _judged(result: Result, bare: Result, target: str, needed: float) -> Row:
    """``result`` against its bare app: PASS when its share of bare's requests/s is at least
    ``needed`` (and it had no error)."""
    share = _share(result, bare)
    ok = share >= needed and result.errors == 0
    return Row(result, share, target, "PASS" if ok else "FAIL", _cpu_share(result, bare))


def _baseline(result: Result) -> Row:
    return Row(result, 1.0, "(baseline)", "", 1.0)


def rank(results: dict[str, list[Result]]) -> list[Row]:
    """The measured rows (by group, in :data:`GROUPS` order) against their targets: each
    list's share of bare (the Partner list also with rate limits on, against it with them
    off), the snapshot's rate."""
    rows: list[Row] = []
    key_target = f"≥ {KEY_TARGET * 100:.0f} % of bare"
    if "partner" in results:
        bare_sites, key, limited, jwt = results["partner"]
        limited_needed = LIMITED_SHARE * _share(key, bare_sites)
        rows += [
            _baseline(bare_sites),
            _judged(key, bare_sites, key_target, KEY_TARGET),
            _judged(
                limited,
                bare_sites,
                f"≥ {limited_needed * 100:.0f} % of bare ({LIMITED_SHARE * 100:.0f} % of the API "
                "key's, limits off)",
                limited_needed,
            ),
            _judged(jwt, bare_sites, f"≥ {JWT_TARGET * 100:.0f} % of bare", JWT_TARGET),
        ]
    if "v1" in results:
        bare_alarms, alarms = results["v1"]
        rows += [_baseline(bare_alarms), _judged(alarms, bare_alarms, key_target, KEY_TARGET)]
    if "dealer" in results:
        bare_dealer, dealer = results["dealer"]
        rows += [_baseline(bare_dealer), _judged(dealer, bare_dealer, key_target, KEY_TARGET)]
    if "snapshot" in results:
        [snapshot] = results["snapshot"]
        ok = snapshot.rps >= SNAPSHOT_TARGET and snapshot.errors == 0
        rows.append(Row(snapshot, None, f"≥ {SNAPSHOT_TARGET:,.0f}/s", "PASS" if ok else "FAIL"))
    return rows


HEADERS = (
    "Request",
    "Server",
    "Requests/s",
    "p50 ms",
    "p99 ms",
    "vs bare",
    "Errors",
    "Server CPU",
    "CPU µs/req",
    "vs bare (CPU)",
    "Target",
    "Verdict",
)
CPU_NOTE = (
    "Server CPU: share of core {core} the server used while measured; well under 100 % means "
    "other load on the machine held it back, and that row is low. CPU µs/req: the server's "
    "user + system time per request; vs bare (CPU): the bare app's CPU per request over the "
    "row's, the share it would reach on a core of its own (steadier than requests/s on a "
    "busy machine)."
)


def cells(row: Row) -> tuple[str, ...]:
    """One row's values as shown, shared by the console and Markdown tables."""
    r = row.result
    return (
        r.request,
        r.label,
        f"{r.rps:,.0f}",
        f"{r.p50_ms:.2f}",
        f"{r.p99_ms:.2f}",
        "n/a" if row.ratio is None else f"{row.ratio * 100:.0f} %",
        str(r.errors),
        f"{r.server_cpu * 100:.0f} %",
        f"{r.cpu_us:,.1f}",
        "n/a" if row.cpu_ratio is None else f"{row.cpu_ratio * 100:.0f} %",
        row.target,
        row.verdict,
    )


def text_table(rows: Sequence[Row]) -> str:
    table = [HEADERS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def line(values: Sequence[str]) -> str:
        left = (v.ljust(w) for v, w in zip(values[:2], widths[:2], strict=True))
        numbers = (v.rjust(w) for v, w in zip(values[2:-2], widths[2:-2], strict=True))
        last = (v.ljust(w) for v, w in zip(values[-2:], widths[-2:], strict=True))
        return "  ".join([*left, *numbers, *last]).rstrip()

    rule = "-" * len(line(HEADERS))
    return "\n".join([line(HEADERS), rule, *(line(c) for c in table[1:])])


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---" + "|---:" * 8 + "|---|---|"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


TARGETS = (
    f"Targets (issue #18), in requests/s against bare Starlette measured in the same run: the "
    f"Partner list (GET {SITES_PATH}) ≥ {KEY_TARGET * 100:.0f} % with the API key, "
    f"≥ {JWT_TARGET * 100:.0f} % with a client-credentials JWT; with the API key and rate "
    f"limits on (every request takes a token, none refused) ≥ {LIMITED_SHARE * 100:.0f} % of it "
    f"with them off; GET {ALARMS_PATH} with an Apps key (dealer 1001, events:read) and "
    f"GET {DEALER_PATH} with the API key ≥ {KEY_TARGET * 100:.0f} % each; a cached snapshot "
    f"(GET /_sandbox/media/<id>.jpg?access_token=…, from GET {ALARMS_PATH}/<id>) "
    f"≥ {SNAPSHOT_TARGET:,.0f} JPEG responses/s."
)


def load_line(seconds: int, warmup: int) -> str:
    """How the load was made, so a number is never read without its conditions."""
    return (
        f"Each row: `wrk -t1 -c{CONNECTIONS} -d{seconds}s --latency` after a {warmup} s "
        f"warm-up; servers pinned to core {SERVER_CORE}, wrk to core {WRK_CORE} "
        "(`taskset -c`), loopback only. The bare app serves the JSON the sandbox answered "
        "to the same request, serialized per request."
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def versions() -> str:
    names = ("starlette", "uvicorn", "uvloop", "httptools")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def revision() -> str:
    """The commit measured, flagged when sandbox/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sandbox"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes in sandbox/" if dirty.stdout else "")


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat; (0, 0) where there is none."""
    with contextlib.suppress(OSError, ValueError):
        fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)
    return 0, 0


def background_load(seconds: float = 1.0) -> float | None:
    """Share of CPU busy before we start anything: other load skews every row."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else None


def machine(load: float | None) -> list[str]:
    busy = "unknown" if load is None else f"{load * 100:.0f} % of all cores busy"
    return [
        f"- CPU: {cpu_model()}",
        f"- Cores: {os.cpu_count()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Kernel: {platform.system()} {platform.release()}",
        f"- Packages: {versions()}",
        f"- Sandbox revision: {revision()}",
        f"- Background load just before the run: {busy}",
        f"- Date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
    ]


def write_results(
    rows: Sequence[Row], seconds: int, warmup: int, quick: bool, load: float | None
) -> Path:
    """bench/results.md: the same table, how it was measured, and on what machine."""
    title = "# `make bench` results" + (" (quick run)" if quick else "")
    text = "\n".join(
        [
            title,
            "",
            TARGETS,
            "",
            markdown_table(rows),
            "",
            load_line(seconds, warmup),
            "",
            CPU_NOTE.format(core=SERVER_CORE),
            "",
            "## Machine",
            "",
            *machine(load),
            "",
        ]
    )
    path = BENCH_DIR / "results.md"
    path.write_text(text, encoding="utf-8")
    return path


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, help="seconds per measurement [default: 8]")
    parser.add_argument(
        "--quick", action="store_true", help="2 s measurements, 1 s warm-ups (a smoke test)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="measure only these rows (repeatable) [default: all]",
    )
    args = parser.parse_args(argv)
    if args.duration is not None and args.duration < 1:
        parser.error("--duration must be a whole number of seconds >= 1")
    return args


def preflight() -> None:
    """Fail early and clearly on a machine that cannot run this benchmark as specified."""
    if len(os.sched_getaffinity(0)) < 2:
        raise BenchError("needs 2 cores (one for the server, one for wrk)")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install wrk util-linux)")
    if not (BIN / "chekt-sandbox").exists():
        raise BenchError(f"{BIN / 'chekt-sandbox'} is missing; run `make install`")


def start_sandbox(stack: contextlib.ExitStack, logs: Path) -> tuple[int, int]:
    """The sandbox's port and pid, once it serves its JWKS (its readiness signal)."""
    port = free_port()
    argv = [str(BIN / "chekt-sandbox"), "serve", "--port", str(port), "--db", ":memory:"]
    log = logs / "sandbox.log"
    proc = stack.enter_context(spawned(argv, log, child_env()))
    wait_ready(proc, port, "/.well-known/jwks.json", log, "the sandbox")
    return port, proc.pid


def start_bare(stack: contextlib.ExitStack, logs: Path, routes: dict[str, Any]) -> tuple[int, int]:
    """The bare app's port and pid, serving ``routes`` (path → the sandbox's JSON)."""
    routes_file = logs / "routes.json"
    routes_file.write_text(json.dumps(routes), encoding="utf-8")
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "bare_app.py"), str(port)]
    log = logs / "bare_app.log"
    proc = stack.enter_context(spawned(argv, log, child_env(BENCH_ROUTES_JSON=str(routes_file))))
    wait_ready(proc, port, SITES_PATH, log, "the bare app")
    return port, proc.pid


def listed(port: int, path: str, token: str) -> list[Any]:
    found = get_json(port, path, token)
    if not isinstance(found, list) or not found:
        raise BenchError(f"GET {path} did not answer a non-empty JSON array")
    return found


def benchmark(seconds: int, warmup: int, groups: Sequence[str] = GROUPS) -> dict[str, list[Result]]:
    """Each bare row just before the sandbox rows it is the baseline of, then the snapshot;
    both servers stay up, the one not measured idle. ``groups``: which rows."""
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chekt-bench-")))
        print("Starting the sandbox ...", flush=True)
        port, pid = start_sandbox(stack, logs)
        api_key, client_id, secret = sandbox_credentials(port)
        jwt = access_token(port, client_id, secret)
        app_key = apps_key(port)
        sites = listed(port, SITES_PATH, api_key)
        dealer_sites = listed(port, DEALER_PATH, api_key)
        alarms = listed(port, ALARMS_PATH, app_key)
        link = snapshot_link(port, alarms, app_key)
        status, content_type, jpeg = fetch(port, link)  # rendered now, cached from here on
        if status != 200 or not jpeg.startswith(b"\xff\xd8"):
            raise BenchError(f"GET {link[:80]} answered {status} {content_type}, not a JPEG")
        sandbox = [
            Target("Partner sites", "sandbox, API key", port, SITES_PATH, api_key, pid,
                   Expect(json=sites)),
            Target("Partner sites", "sandbox, API key, rate limits on", port, SITES_PATH,
                   api_key, pid, Expect(json=sites), HIGH_CEILING),
            Target("Partner sites", "sandbox, JWT", port, SITES_PATH, jwt, pid,
                   Expect(json=sites)),
            Target("/v1 alarms", "sandbox, Apps key", port, ALARMS_PATH, app_key, pid,
                   Expect(json=alarms, tokens_vary=True)),
            Target("snapshot JPEG", "sandbox, cached", port, link, None, pid,
                   Expect(JPEG_TYPE, raw=jpeg)),
            Target("Dealer sites", "sandbox, API key", port, DEALER_PATH, api_key, pid,
                   Expect(json=dealer_sites)),
        ]  # fmt: skip
        for target in sandbox:  # fail before spending minutes on the baseline
            verify(target)
        print(
            f"Sandbox ready on port {port}; {len(sites)} sites, {len(alarms)} alarms "
            f"({len(json.dumps(alarms)):,} B), a {len(jpeg):,} B snapshot.",
            flush=True,
        )
        routes = {SITES_PATH: sites, ALARMS_PATH: alarms, DEALER_PATH: dealer_sites}
        bare_port, bare_pid = start_bare(stack, logs, routes)
        # the same Authorization headers as the sandbox rows: wrk sends identical requests
        bare = [
            Target("Partner sites", "bare Starlette", bare_port, SITES_PATH, api_key, bare_pid,
                   Expect(json=sites)),
            Target("/v1 alarms", "bare Starlette", bare_port, ALARMS_PATH, app_key, bare_pid,
                   Expect(json=alarms)),
            Target("Dealer sites", "bare Starlette", bare_port, DEALER_PATH, api_key, bare_pid,
                   Expect(json=dealer_sites)),
        ]  # fmt: skip
        order = {
            "partner": [bare[0], sandbox[0], sandbox[1], sandbox[2]],
            "v1": [bare[1], sandbox[3]],
            "dealer": [bare[2], sandbox[5]],
            "snapshot": [sandbox[4]],
        }
        return {
            group: [measure(target, seconds, warmup) for target in order[group]]
            for group in GROUPS
            if group in groups
        }


def _terminate(signum: int, frame: object) -> NoReturn:
    """SIGTERM unwinds like Ctrl-C, so every child is stopped by the ``finally`` blocks."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seconds = args.duration or (2 if args.quick else 8)
    warmup = 1 if args.quick else 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        preflight()
        load = background_load()
        if load is not None and load > BUSY_WARNING:
            print(
                f"warning: {load * 100:.0f} % of the CPU was busy before the run; "
                "expect low, noisy rows"
            )
        groups = set(args.only or GROUPS)
        rows = rank(benchmark(seconds, warmup, [g for g in GROUPS if g in groups]))
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; all servers stopped", file=sys.stderr)
        return 130
    print()
    print(TARGETS)
    print(load_line(seconds, warmup))
    print(CPU_NOTE.format(core=SERVER_CORE))
    print()
    print(text_table(rows))
    disturbed = [row.result.label for row in rows if row.result.server_cpu < SATURATED]
    if disturbed:
        print(f"\nwarning: server CPU under {SATURATED * 100:.0f} % in: {', '.join(disturbed)}")
    path = write_results(rows, seconds, warmup, args.quick, load)
    print(f"\nWritten to {path.relative_to(ROOT)}")
    return 0 if all(row.verdict != "FAIL" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
