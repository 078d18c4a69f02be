"""An example partner service: receives CHeKT webhooks and enriches alarms.

What a real integration has to get right, in about a hundred lines:

- verify every delivery's signature over the raw body, within a 5-minute window;
- dedupe on the event id (CHeKT retries, and may deliver twice);
- answer fast with 2xx, so CHeKT does not retry;
- call the Partner API with an assertion token (tier 3) and a trace id to enrich alarms;
- with a CHeKT Apps API key (tier 1) for the alarm's dealer, acknowledge the alarm and
  annotate it with a verdict, as an AI verification app does.

``Switches`` let the sandbox's tests break it on purpose, to prove they would notice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.webhooks import InvalidSignature, verify_signature

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Switches:
    """Ways to break the service on purpose."""

    down: bool = False  # answer 503 to every delivery
    outage_until: float = 0.0  # ... or only until this time (on the service's clock)
    slow: float = 0.0  # seconds spent on every delivery (a service that can't keep up)
    check_signatures: bool = True
    dedupe: bool = True
    enrich: bool = True
    handle_alarms: bool = True  # acknowledge and annotate (for dealers it has an Apps key of)


@dataclass
class PartnerConfig:
    chekt_url: str  # the sandbox (or CHeKT) base URL, no trailing slash
    webhook_secret: str
    client_id: str
    private_key_pem: bytes
    key_id: str
    clock: Callable[[], float] = time.time  # injectable, so tests can share the sandbox clock
    apps_keys: dict[int, str] = field(default_factory=dict)  # Apps API key by dealer id


@dataclass
class PartnerState:
    processed: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: int = 0


class ChektClient:
    """Partner API calls authenticated with a signed assertion, as CHeKT's sample does."""

    def __init__(self, config: PartnerConfig) -> None:
        self.config = config
        self._token: tuple[str, float] | None = None
        self._http: httpx.AsyncClient | None = None  # one pooled client, made in the app's loop

    def _assertion(self) -> str:
        now = int(self.config.clock())
        claims = {
            "iss": self.config.client_id,
            "sub": self.config.client_id,
            "aud": self.config.chekt_url + "/",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(
            claims,
            self.config.private_key_pem,
            algorithm="RS256",
            headers={"kid": self.config.key_id},
        )

    async def token(self, client: httpx.AsyncClient) -> str:
        if self._token is None or self._token[1] <= self.config.clock() + 60:
            response = await client.post(
                f"{self.config.chekt_url}/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self._assertion(),
                    "audience": "https://adc-m2m.chektdev.com/",
                },
            )
            response.raise_for_status()
            body = response.json()
            self._token = (body["access_token"], self.config.clock() + body["expires_in"])
        return self._token[0]

    async def site(self, dealer_id: int, site_id: int) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10)
        token = await self.token(self._http)
        response = await self._http.get(
            f"{self.config.chekt_url}/partner/v1/dealers/{dealer_id}/sites/{site_id}",
            headers={"Authorization": f"Bearer {token}", "x-partner-trace-id": str(uuid.uuid4())},
        )
        response.raise_for_status()
        return dict(response.json())

    async def handle_alarm(self, key: str, alarm_id: str) -> None:
        """Acknowledge the alarm and annotate it through ``/v1`` with the dealer's app key;
        one already acknowledged (a redelivery) is left as it is."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10)
        auth = {"Authorization": f"Bearer {key}"}
        url = f"{self.config.chekt_url}/v1/alarms/{alarm_id}"
        acked = await self._http.post(
            f"{url}/acknowledge", json={"reason": "seen by the example service"}, headers=auth
        )
        if acked.status_code == 409:
            return
        acked.raise_for_status()
        note = {"source": "example-partner", "verdict": "uncertain", "confidence": 0.5}
        (await self._http.post(f"{url}/annotate", json=note, headers=auth)).raise_for_status()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def create_partner_app(config: PartnerConfig, switches: Switches | None = None) -> Starlette:
    switches = switches or Switches()
    state = PartnerState()
    chekt = ChektClient(config)

    async def webhook(request: Request) -> Response:
        if switches.down or config.clock() < switches.outage_until:
            return JSONResponse({"error": "maintenance"}, 503)
        body = await request.body()
        if switches.slow:
            await asyncio.sleep(switches.slow)
        if switches.check_signatures:
            try:
                verify_signature(config.webhook_secret, request.headers, body, now=config.clock())
            except InvalidSignature as exc:
                state.rejected += 1
                return JSONResponse({"error": str(exc)}, 401)
        event = await request.json()
        if switches.dedupe and event["id"] in state.seen:
            return JSONResponse({"status": "duplicate"})
        state.seen.add(event["id"])
        state.processed.append(event)
        data = event["data"]
        if event["type"] == "alarm.created" and switches.enrich:
            try:
                site = await chekt.site(data["dealer_id"], data["site_id"])
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    state.seen.discard(event["id"])  # let CHeKT retry it later
                    return JSONResponse({"error": "enrichment failed, retry"}, 503)
                site = {"name": None}  # a dealer we are not connected to: keep the alarm
            state.alarms[data["alarm_id"]] = {"site_name": site["name"], **data}
        key = config.apps_keys.get(data.get("dealer_id", 0))
        if event["type"] == "alarm.created" and switches.handle_alarms and key:
            try:
                await chekt.handle_alarm(key, data["alarm_id"])
            except httpx.HTTPError:
                state.seen.discard(event["id"])  # let CHeKT retry it later
                return JSONResponse({"error": "handling failed, retry"}, 503)
        return JSONResponse({"status": "accepted"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await chekt.close()

    app = Starlette(routes=[Route("/chekt/webhooks", webhook, methods=["POST"])], lifespan=lifespan)
    app.state.partner = state
    app.state.switches = switches
    return app
