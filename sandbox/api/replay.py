"""Polled lists answered again without going through the app: a client that polls a list
sends the same request again and again, and until something it rests on changes, the answer
is the one its handler gave the last time.

A handler opts in with :func:`replayable` for a 200 that depends only on the request line
(path and query), the credential, the ``Host`` (the issuer a token is checked against), the
store's data and the sandbox clock (``render``): the Partner, Apps and dealer lists. The
request context (:mod:`sandbox.api.middleware`) keeps the answer once it went out as a 200
that no fault struck, and answers the same request with it (:meth:`Replays.find`) while:

- the store's data version is the one the answer was made at (any write forgets it: a
  revoked key, a rotated secret, a revoked token are writes too);
- the principal the guard gave for the credential has not expired since, on the clock the
  guard checks it against (:meth:`sandbox.auth.guard.Guard.holds`); an expired one goes the
  normal way, to its 401;
- the request is plain: a GET without a body, headers within ``max_headers``, a ``Host``
  the browser guard allows, no inbound fault rule in force;
- the client's rate-limit bucket has a token (the replay takes it and sends the headers the
  handler would; an empty bucket goes the normal way, to its 429).

The rest of what a request gets is done for a replay as for any request: its request id,
trace id and clock header, and its journal entry (credentials hidden the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.errors import ApiError
from sandbox.recorder import pack
from sandbox.redaction import plain_headers
from sandbox.settings import Settings

if TYPE_CHECKING:
    from sandbox.api.common import Services
    from sandbox.auth.guard import Principal

Headers = list[tuple[bytes, bytes]]
# path, query, Authorization, Host, and what else names the issuer a token is checked
# against: the scheme (X-Forwarded-Proto may set it) and, without a Host, the server address
Key = tuple[str, bytes, bytes, bytes | None, str, Any]
PENDING = "replayable"  # request state: the answer a handler offers, kept once sent
_LIMIT = 256  # answers kept; all are forgotten when full (polling keeps a handful)


@dataclass(frozen=True, slots=True)
class Answer:
    """A handler's 200: its headers around ``content-length`` and its body, or how to make
    the body at the sandbox clock's ``now``; the data version and principal it was made for."""

    version: tuple[int, int]
    principal: Principal | None
    head: Headers
    tail: Headers
    body: bytes
    render: Callable[[float], bytes] | None = None
    # ``head`` and ``tail`` packed for the journal, when redaction leaves them as they are
    # (``plain``), and the answer's Content-Type: found once, when it is kept
    plain: bool = False
    packed_head: bytes = b""
    packed_tail: bytes = b""
    content_type: str = ""


@dataclass(slots=True)  # not frozen: made on every replay, and a frozen one's fields cost
class Replay:
    """What :meth:`Replays.find` answers a request with: the principal, the headers (rate-limit
    ones included) and body; ``packed``: those headers packed for the journal when redaction
    leaves them as they are, else b"" (the journal then checks them); ``content_type``: the
    answer's; ``repeats``: the body is the same object at every replay (not rendered)."""

    principal: Principal
    headers: Headers
    body: bytes
    packed: bytes
    content_type: str
    repeats: bool


def replayable(
    request: Request,
    response: Response,
    version: tuple[int, int],
    render: Callable[[float], bytes] | None = None,
) -> Response:
    """Offer ``response`` (made at data ``version``) for replay; ``render(now)`` makes its
    body at another moment when it depends on the clock. Returns ``response``."""
    headers = list(response.raw_headers)  # a copy: rate-limit headers are added later
    cut = next((i for i, (name, _) in enumerate(headers) if name == b"content-length"), None)
    if cut is not None and response.status_code == 200 and isinstance(response.body, bytes):
        request.state.replayable = Answer(
            version, None, headers[:cut], headers[cut + 1 :], response.body, render
        )
    return response


class Replays:
    """The answers kept for replay (see the module's docstring)."""

    def __init__(self, settings: Settings, host_allowed: Callable[[bytes], bool]) -> None:
        self._answers: dict[Key, Answer] = {}
        self._host_allowed = host_allowed  # the browser guard's verdict on a Host
        self._max_headers = settings.max_headers

    def __len__(self) -> int:
        return len(self._answers)

    def keep(self, key: Key, answer: Answer, principal: Principal) -> None:
        """Keep the answer a handler offered, once it went out as it was."""
        if len(self._answers) >= _LIMIT:
            self._answers.clear()
        head, tail = answer.head, answer.tail
        if answer.render is None:  # a body that never changes: its headers neither
            head, tail = [*head, (b"content-length", b"%d" % len(answer.body)), *tail], []
        packed_head, packed_tail = pack(head), pack(tail)
        self._answers[key] = Answer(
            answer.version,
            principal,
            head,
            tail,
            answer.body,
            answer.render,
            plain_headers(_joined(packed_head, packed_tail)),
            packed_head,
            packed_tail,
            next((v.decode("latin-1") for k, v in [*head, *tail] if k == b"content-type"), ""),
        )

    def clear(self) -> None:
        self._answers.clear()

    def find(self, services: Services, key: Key, size: int) -> Replay | None:
        """The 200 to answer a GET for ``key`` with (rate-limit headers included, its token
        taken), or None: the request goes the normal way.
        ``size``: the bytes of its headers, or -1 when it carries a body."""
        answer = self._answers.get(key)
        if answer is None or answer.principal is None:
            return None
        if not 0 <= size <= self._max_headers or services.faults.rules:
            return None
        host = key[3]
        if host is not None and not self._host_allowed(host):
            return None
        world = services.world
        if world.store.data_version() != answer.version:
            del self._answers[key]
            return None
        principal = answer.principal  # the same credential and issuer, at the same version
        if not services.guard.holds(principal):
            return None  # expired since: the normal way says so
        if answer.render is None:
            body, headers = answer.body, answer.head.copy()  # head: all of them (see keep)
            packed = answer.packed_head if answer.plain else b""
        else:
            body = answer.render(world.now())
            length = b"%d" % len(body)
            headers = [*answer.head, (b"content-length", length), *answer.tail]
            packed = (
                _joined(answer.packed_head, b"content-length:" + length, answer.packed_tail)
                if answer.plain
                else b""
            )
        limiter = services.limiter
        if limiter.active:
            try:
                limits = limiter.take_raw(principal.client_id)
            except ApiError:
                return None  # an empty bucket: the normal way answers 429 (taking no token)
            if limits is not None:  # digits the limiter made: as plain as the rest
                headers += limits
                packed = packed and _joined(packed, pack(limits))
        return Replay(principal, headers, body, packed, answer.content_type, answer.render is None)


def _joined(*packed: bytes) -> bytes:
    """Blocks of packed headers as one (empty ones hold no line)."""
    return b"\n".join([block for block in packed if block])


def rate_headers(limits: dict[str, str]) -> Headers:
    """The rate-limit headers as an answer carries them (appended after its own)."""
    return [(name.lower().encode(), value.encode()) for name, value in limits.items()]
