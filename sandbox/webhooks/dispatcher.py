"""The delivery worker: one asyncio task in the server's loop that fans out due events and
makes due attempts, signing each one fresh, with CHeKT's retry behaviour.

Status table: 2xx delivered; 410 disables the subscription; 429/503 honour ``Retry-After``;
3xx (never followed), other 4xx/5xx, refused or reset connections and timeouts are retried
on the schedule (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then exactly 24 h after the first);
24 h of unbroken failure disables the subscription.

On the system clock the worker sleeps until the next thing is due. A virtual clock is moved
by :meth:`Dispatcher.advance_to`, a simulation clock's step loop: the clock goes to each due
time in turn and starts every attempt due then, stamped with that time. It moves on to the
next due time while attempts are in flight only when none of them could still schedule
something before it and it stays within ``RUN_AHEAD`` of their stamps (a receiver reading the
sandbox clock mid-attempt sees it well inside the signature tolerance); otherwise it stands
there until each has an outcome, waiting at most ``webhook_timeout`` plus a second, which is
longer than any attempt may last. So a day of retries for many events costs the attempts, not
one round trip per due time.

Each subscription's connection budget is its own in-flight cap (``webhook_concurrency``):
the connection pool has no shared limit, and subscriptions at their cap are left out of the
due query, so a receiver that hangs holds only its own attempts back. While a ``burst`` of
webhook chaos is pending (:mod:`sandbox.webhooks.chaos`), the cap is lifted by what is left
of it, so first attempts due together all go out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

from sandbox.clock import TIME_HEADER, VirtualClock, stamp
from sandbox.logs import safe_logger
from sandbox.net import MAX_RESPONSE, DestinationPolicy, DestinationRefused
from sandbox.settings import Settings
from sandbox.store import Row
from sandbox.webhooks import outbox, profiles
from sandbox.webhooks.chaos import Faults, trickle
from sandbox.webhooks.failures import FailureRuns
from sandbox.webhooks.signing import sign

if TYPE_CHECKING:  # aiohttp loads with the first delivery: a serve that sends none is lighter
    import aiohttp
from sandbox.world import World

log = safe_logger("sandbox.webhooks")
USER_AGENT = "CHeKT-Webhooks/1.0 (chekt-sandbox)"
BATCH = 256
STEP_GRACE = 1.0  # s a virtual-clock step waits beyond the delivery timeout
RUN_AHEAD = 60.0  # s a virtual clock may move past the stamp of an attempt in flight
# outcomes are journaled together (one commit) once this many wait, the oldest has waited
# this long (s), or nothing is left to do: a commit per completion would cap the rate
FLUSH_BATCH = 256
FLUSH_AFTER = 0.1
# on the system clock, a subscription's due attempts are claimed this many ahead of its room
# and start from memory as room opens: one claim query per few dozen attempts, not per few
PREFETCH = 32


def _retry_after(headers: dict[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Dispatcher:
    def __init__(self, world: World, settings: Settings, policy: DestinationPolicy) -> None:
        self.world = world
        self.settings = settings
        self.policy = policy
        self.rng = random.Random(settings.seed)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: dict[str, int] = defaultdict(int)
        self._sends: set[asyncio.Task[None]] = set()
        # rowid → subscription of each delivery in flight or not yet recorded
        self._claimed: dict[int, str] = {}
        # claimed ahead of room (PREFETCH), by subscription, oldest first
        self._ready: dict[str, deque[Row]] = defaultdict(deque)
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        # (url, policy) → what the policy says of the URL's form: parsed once, not per attempt
        self._url_checks: dict[tuple[str, bool, tuple[int, ...]], str | None] = {}
        # rowid → the latest virtual time the clock may reach while that attempt is in flight
        self._ahead: dict[int, float] = {}
        self.runs = FailureRuns(world)
        self.errors: list[BaseException] = []
        # a new event or delivery, from any surface or thread, is a reason to look again
        world.store.watch(("events", "deliveries"), self.wake, verbs=("INSERT",))
        # rows claimed ahead carry their subscription's URL, secret and status as read then
        world.store.watch(("webhooks",), self._drop_ready)
        self.faults = Faults()  # what receivers must survive, on demand
        self.faults.reset(settings)
        self._outcomes: list[outbox.Outcome] = []  # written together (FLUSH_BATCH)
        self._first_outcome = 0.0  # loop time of the oldest outcome not yet written
        self._advancing = asyncio.Lock()  # one virtual-clock advance at a time
        self._running = False  # between start and stop: attempts may start

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._advancing = asyncio.Lock()
        outbox.recover(self.world)
        self._running = True
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")
        if isinstance(self.world.clock, VirtualClock):
            self.world.clock.drive(self.run_until)

    async def stop(self) -> None:
        if isinstance(self.world.clock, VirtualClock):
            self.world.clock.drive(None)
        self._running = False  # nothing new starts from here on
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for send in list(self._sends):
            send.cancel()
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None  # a later start makes a new one with its first delivery
        self._flush()
        self._claimed.clear()
        self._ready.clear()
        outbox.recover(self.world)

    def _open_session(self) -> aiohttp.ClientSession:
        """The client every delivery shares, made with the first one."""
        import aiohttp

        from sandbox.outbound import PolicyResolver

        connector = aiohttp.TCPConnector(  # no shared limit: the per-subscription cap is it
            resolver=PolicyResolver(self.policy), use_dns_cache=False, limit=0
        )
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    def wake(self) -> None:
        """Look again now (new events, a moved clock); safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def run_until(self, target: float) -> None:
        """Drive the virtual clock to ``target`` (what ``VirtualClock.advance`` and ``set``
        call), blocking the calling thread, which must not be the server's loop."""
        clock, loop = self.world.clock, self._loop
        assert isinstance(clock, VirtualClock)
        if loop is None or loop.is_closed():
            clock.move_to(target)
            return
        if _running_loop() is loop:
            raise RuntimeError(
                "VirtualClock.advance waits for deliveries: call it from another thread, or "
                "await Dispatcher.advance_to() on the server's loop"
            )
        future = asyncio.run_coroutine_threadsafe(self.advance_to(target), loop)
        while True:
            try:
                future.result(timeout=1.0)
                return
            except TimeoutError:
                if not loop.is_running():  # the server stopped under us
                    future.cancel()
                    clock.move_to(target)
                    return

    async def advance_to(self, target: float) -> None:
        """Step the virtual clock to ``target``: to each due time on the way in turn, starting
        what fell due there, standing there until it has an outcome unless moving on is safe
        (:meth:`_may_pass`), then to ``target``, settled."""
        clock = self.world.clock
        assert isinstance(clock, VirtualClock)
        async with self._advancing:
            settled = False
            while self._running:
                await self._start_due()
                due = self._next_due(clock.now())
                passing = due is not None and due <= target and self._may_pass(due)
                if not settled and not passing and any(self._in_flight.values()):
                    await self._settle()  # their outcomes may schedule what comes next
                    settled = True
                    continue
                if due is None or due > target:
                    break
                clock.move_to(due)
                settled = False
            clock.move_to(target)
            if self._running:
                await self._settle()

    def _next_due(self, now: float) -> float | None:
        """The next due time after ``now``, counting outcomes not yet journaled."""
        due = outbox.next_due(self.world, after=now)
        waiting = [o[3] for o in self._outcomes if o[3] is not None and o[3] > now]
        return min([*waiting, *([due] if due is not None else [])], default=None)

    def _may_pass(self, due: float) -> bool:
        """Whether the clock may move to ``due`` with the attempts in flight unsettled."""
        return all(due <= limit for limit in self._ahead.values())

    async def _start_due(self) -> None:
        """Start every attempt due now (each stamped with this time before returning),
        waiting for room only while a subscription at its cap holds a due one back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.webhook_timeout + STEP_GRACE
        while self._running:
            self._flush()  # a retry due now may wait in an outcome not yet journaled
            more, began = True, 0
            while more:
                started = self._step()
                began += started
                more = started >= BATCH
                if started:
                    await asyncio.sleep(0)  # the new attempts read the clock and sign now
            if not outbox.due_left(self.world, self._claimed):
                return
            cap = self.settings.webhook_concurrency
            held = self.faults.burst <= 0 and any(n >= cap for n in self._in_flight.values())
            if not held and began:
                continue  # room opened while the new attempts started: claim the rest now
            if not held or not self._sends:
                return
            if not await self._one_ends(deadline, "still waiting"):
                return

    async def _settle(self) -> None:
        """Start everything due now and wait until each attempt in flight has an outcome,
        for at most a delivery timeout and a grace second: then the clock moves on, and an
        attempt still in flight is recorded when it ends, at whatever time the clock reads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.webhook_timeout + STEP_GRACE
        while self._running:
            while self._step() >= BATCH:
                pass
            if not any(self._in_flight.values()):
                self._flush()  # the clock moves on from what is written
                return
            if not await self._one_ends(deadline, "still in flight"):
                return

    async def _one_ends(self, deadline: float, left: str) -> bool:
        """Wait until an attempt in flight ends; False (logged) once ``deadline`` (loop
        time) has passed: the clock moves on with the attempts ``left``."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.warning("virtual clock moved on with webhook attempts %s", left)
            return False
        await asyncio.wait(set(self._sends), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        return True

    async def _run(self) -> None:
        # not ``while True``: Python 3.11's wait_for swallows a cancel that comes as the wake
        # it waits on fires, and the loop would then wait for the next wake forever (stop()
        # hung after a request had woken the dispatcher as the app shut down)
        while self._running:
            try:
                busy = self._step() >= BATCH
            except Exception as exc:  # a bug: keep it for the test thread, keep serving
                log.exception("webhook dispatcher step failed")
                self.errors.append(exc)
                await asyncio.sleep(1.0)  # don't spin on a failure that will repeat
                continue
            if busy:
                await asyncio.sleep(0)
                continue
            timeout = None
            due = outbox.next_due(self.world)
            now = self.world.now()
            if due is not None and due <= now:
                # due but every subscription with work is at its concurrency cap: a finishing
                # attempt wakes us; the timeout only guards against a missed wake
                timeout = 1.0 if any(self._in_flight.values()) else 0.05
            elif due is not None and not self.world.clock.virtual:
                timeout = due - now
            if self._outcomes:
                timeout = min(timeout if timeout is not None else FLUSH_AFTER, FLUSH_AFTER)
            await self._wait(timeout)

    async def _wait(self, timeout: float | None) -> None:
        """Until woken, or ``timeout`` seconds (a timer that wakes, cheaper than wait_for's
        task per wait)."""
        alarm = (
            None
            if timeout is None
            else asyncio.get_running_loop().call_later(timeout, self._wake.set)
        )
        try:
            await self._wake.wait()
        finally:
            if alarm is not None:
                alarm.cancel()
        self._wake.clear()

    def _record(
        self, delivery: Row, attempt: dict[str, Any], state: str, next_at: float | None
    ) -> None:
        if not self._outcomes:
            self._first_outcome = asyncio.get_running_loop().time()
        self._outcomes.append((delivery, attempt, state, next_at))

    def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if outcomes:
            try:
                outbox.record_attempts(self.world, outcomes)
            except Exception:
                self._outcomes[:0] = outcomes  # kept for the next flush, claims held till then
                raise
            # recorded: only now may a due retry of theirs be claimed again
            for delivery, *_ in outcomes:
                self._claimed.pop(delivery["rid"], None)

    def forget(self) -> None:
        """The deliveries are being cleared (a reset): outcomes not yet written and claims
        go with them (an attempt still in flight records nothing when it ends)."""
        self._outcomes.clear()
        self._claimed.clear()
        self._ready.clear()
        self._ahead.clear()

    def _drop_ready(self) -> None:
        """A subscription changed: what was claimed ahead is claimed again, read afresh (on
        the server's loop, whichever thread wrote)."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self._drop_ready)
            return
        for queue in self._ready.values():
            for delivery in queue:
                self._claimed.pop(delivery["rid"], None)
        self._ready.clear()

    def _step(self) -> int:
        """Fan out due events and start due attempts; how many it started. Fewer than
        ``BATCH``: all that could start now did, so stepping again at once finds nothing."""
        if self._outcomes and (
            len(self._outcomes) >= FLUSH_BATCH
            or asyncio.get_running_loop().time() - self._first_outcome >= FLUSH_AFTER
        ):
            self._flush()
        if not self._running:
            return 0
        outbox.emit_due(self.world, self.rng, self.faults)
        cap = self.settings.webhook_concurrency
        bursting = self.faults.burst > 0  # first attempts of a burst skip the cap
        ahead = 0 if bursting or self.world.clock.virtual else PREFETCH
        if bursting and self._ready:
            self._drop_ready()  # a burst claims past the cap: nothing waits in memory
        started = self._start_ready(cap)
        # not read: subscriptions at their cap, and those with attempts claimed ahead
        full = [] if bursting else [w for w, n in self._in_flight.items() if n >= cap]
        full += [w for w, queue in self._ready.items() if queue]
        room = self._burst_room if bursting else lambda w: self._room(w) + ahead
        for delivery in outbox.claim_due(self.world, room, BATCH, full, self._claimed):
            self._claimed[delivery["rid"]] = delivery["webhook_id"]
            if ahead and self._in_flight[delivery["webhook_id"]] >= cap:
                self._ready[delivery["webhook_id"]].append(delivery)
                continue
            self._start(delivery)
            started += 1
        if not started and not any(self._in_flight.values()):
            self._flush()  # idle: journal what waits now
        return started

    def _start_ready(self, cap: int) -> int:
        """Start what was claimed ahead, as far as each subscription has room."""
        started = 0
        for webhook, queue in self._ready.items():
            while queue and self._in_flight[webhook] < cap:
                self._start(queue.popleft())
                started += 1
        return started

    def _start(self, delivery: Row) -> None:
        """Start a claimed delivery's attempt."""
        self._ahead[delivery["rid"]] = min(
            float(delivery["next_at"]) + RUN_AHEAD,
            outbox.earliest_retry(delivery, int(delivery["attempts"]) + 1),
        )
        self._in_flight[delivery["webhook_id"]] += 1
        burst = delivery["attempts"] == 0 and self.faults.take_burst()
        task = asyncio.create_task(self._deliver(delivery, burst))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _room(self, webhook_id: str) -> int:
        return self.settings.webhook_concurrency - self._in_flight[webhook_id]

    def _burst_room(self, webhook_id: str) -> int:
        return max(self._room(webhook_id), 0) + self.faults.burst

    async def _deliver(self, delivery: Row, burst: bool = False) -> None:
        try:
            attempt = await self._attempt(delivery, burst)
            if attempt and self.faults.duplicate_rate > self.rng.random():
                await self._duplicate(delivery, attempt)
        except Exception as exc:
            log.exception("webhook delivery %s failed unexpectedly", delivery["delivery_id"])
            self.errors.append(exc)
            if not any(done is delivery for done, *_ in self._outcomes):
                self._claimed.pop(delivery["rid"], None)  # due again; others are untouched
        finally:
            self._ahead.pop(delivery["rid"], None)
            self._in_flight[delivery["webhook_id"]] -= 1
            self._next(delivery["webhook_id"])

    def _next(self, webhook_id: str) -> None:
        """An attempt ended: the next one claimed ahead takes its place at once; the worker
        is woken only when none is left (a look per ended attempt would cost about as much
        as the attempt)."""
        queue = self._ready.get(webhook_id)
        room = self._in_flight[webhook_id] < self.settings.webhook_concurrency
        if queue and self._running and room:
            self._start(queue.popleft())
            if queue:
                return
        self._wake.set()

    def _headers(self, delivery: Row, attempt: int) -> dict[str, str]:
        now = self.world.now()
        timestamp = int(self.world.signing_now())  # skewed by auth chaos, if asked
        variant = profiles.FORMATS[delivery["profile"]].signature or self.settings.signature_variant
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-CHeKT-Event-Id": delivery["event_id"],
            "X-CHeKT-Delivery-Id": delivery["delivery_id"],
            "X-CHeKT-Attempt": str(attempt),
            TIME_HEADER: stamp(now),
            **sign(delivery["secret"], delivery["body"], timestamp, variant),
        }

    def _chaos(self, delivery: Row, burst: bool) -> tuple[list[str], float]:
        """What webhook chaos this attempt meets (its journal marks) and how slowly to send."""
        marks = [delivery["chaos"]] if delivery.get("chaos") else []
        if burst:
            marks.append("burst")
        slow = self.faults.slow_send_ms
        if slow:
            marks.append(f"slow_send {slow:g} ms")
        return marks, slow

    async def _send(self, delivery: Row, attempt: int, burst: bool = False) -> dict[str, Any]:
        """One HTTP attempt; never raises for anything the receiver or network does."""
        headers = self._headers(delivery, attempt)
        marks, slow = self._chaos(delivery, burst)
        sent_at = self.world.now()
        started = time.perf_counter()
        result: dict[str, Any] = {
            "attempt": attempt,
            "scheduled_at": delivery["next_at"],
            "sent_at": sent_at,
            "request": json.dumps(
                {
                    "url": delivery["url"],
                    "headers": headers,
                    "body": delivery["body"].decode("utf-8", "replace"),
                }
            ),
            "status_code": None,
            "response": None,
            "error": None,
            "chaos": ", ".join(marks) or None,
        }
        problem = self._url_problem(delivery["url"])
        if problem is not None:
            return {**result, "outcome": "blocked_destination", "error": problem}
        import aiohttp

        session = self._session or self._open_session()
        seconds = profiles.timeout(delivery["profile"], self.settings.webhook_timeout)
        # exact: aiohttp would round a deadline of 5 s or more up to the next whole second
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=seconds, connect=seconds, ceil_threshold=math.inf
            )
        body: Any = delivery["body"]
        if slow:  # the same bytes, trickling: a Content-Length, not chunked framing
            body = trickle(body, slow)
            headers = {**headers, "Content-Length": str(len(delivery["body"]))}
        try:
            async with session.post(
                delivery["url"],
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                body = await response.content.read(MAX_RESPONSE)
                # from the raw bytes: aiohttp's str headers smuggle non-UTF-8 bytes as lone
                # surrogates, which no JSON export could encode
                response_headers = {
                    k.decode("latin-1"): v.decode("latin-1") for k, v in response.raw_headers
                }
                answer = {
                    "status": response.status,
                    "headers": response_headers,
                    "body": body.decode("utf-8", "replace"),
                }
                outcome = "delivered" if 200 <= response.status < 300 else "failed"
                result.update(
                    status_code=response.status,
                    response=json.dumps(answer),
                    outcome=outcome,
                    retry_after=_retry_after(response_headers),
                )
        except DestinationRefused as exc:
            result.update(outcome="blocked_destination", error=str(exc))
        except TimeoutError:
            result.update(outcome="timeout", error=f"no answer within {seconds:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, DestinationRefused) else None
            if cause is not None:
                result.update(outcome="blocked_destination", error=str(cause))
            else:
                result.update(outcome="failed", error=f"{type(exc).__name__}: {exc}")
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    def _url_problem(self, url: str) -> str | None:
        policy = self.policy
        key = (url, policy.allow_private, policy.own_ports)
        if key not in self._url_checks:
            if len(self._url_checks) >= 1024:
                self._url_checks.clear()
            self._url_checks[key] = policy.url_problem(url)
        return self._url_checks[key]

    async def _duplicate(self, delivery: Row, attempt: int) -> None:
        """Send the very same attempt again, as a flaky network might (fault injection)."""
        result = await self._send(delivery, attempt)
        result.pop("retry_after", None)
        result["error"] = "duplicate sent on purpose (duplicate_rate)"
        self.world.store.insert(
            "attempts",
            {
                "delivery_id": delivery["delivery_id"],
                "event_id": delivery["event_id"],
                "webhook_id": delivery["webhook_id"],
                "next_at": None,
                **result,
            },
        )

    async def forge(self, forged: Row) -> dict[str, Any]:
        """Send one delivery signed with a wrong secret (``outbox.forgery``) and journal it
        as an attempt: a receiver that answers it 2xx does not verify signatures."""
        result = await self._send(forged, 1)
        result.pop("retry_after", None)
        result["error"] = result["error"] or "forged on purpose: signed with a wrong secret"
        attempt = {
            "delivery_id": forged["delivery_id"],
            "event_id": forged["event_id"],
            "webhook_id": forged["webhook_id"],
            "next_at": None,
            **result,
        }
        attempt["seq"] = self.world.store.insert("attempts", attempt)
        return attempt

    async def _attempt(self, delivery: Row, burst: bool = False) -> int:
        """Make the delivery's next attempt; returns its number (0 when none was sent)."""
        attempt = int(delivery["attempts"]) + 1
        if delivery["webhook_status"] != "enabled":
            self._record(
                delivery,
                {
                    "attempt": attempt,
                    "scheduled_at": delivery["next_at"],
                    "sent_at": self.world.now(),
                    "outcome": "disabled",
                    "request": "{}",
                    "error": "the subscription is disabled",
                },
                "disabled",
                None,
            )
            return 0
        result = await self._send(delivery, attempt, burst)
        retry_after = result.pop("retry_after", None)
        status = result["status_code"]
        if result["outcome"] == "delivered":
            self.runs.end(delivery["webhook_id"])
            self._record(delivery, result, "delivered", None)
            return attempt
        if status == 410:
            self.runs.disable(delivery["webhook_id"])
            result["outcome"] = "disabled"
            self._record(delivery, result, "disabled", None)
            return attempt
        honoured = retry_after if status in (429, 503) else None
        # Retry-After counts from the answer; on a virtual clock that may have moved on while
        # the attempt was in flight, the answer belongs to the attempt's own time
        answered = result["sent_at"] if self.world.clock.virtual else self.world.now()
        next_at = outbox.next_attempt_at(delivery, attempt, self.rng, honoured, answered)
        # failure runs are measured on the schedule, so catching up on a virtual clock that
        # jumped a day ahead still makes all eight attempts
        scheduled = float(delivery["next_at"])
        failing_for = scheduled - self.runs.start(delivery["webhook_id"], scheduled)
        if next_at is None or failing_for >= outbox.WINDOW:
            self._record(delivery, result, "failed", None)
            if failing_for >= outbox.WINDOW:
                self.runs.disable(delivery["webhook_id"])
            return attempt
        self._record(delivery, result, "pending", next_at)
        return attempt
