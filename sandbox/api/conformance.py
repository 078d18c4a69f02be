"""The ``check_responses`` self-check: every response to an operation of the OpenAPI document
is held back and checked against it (a declared status, and a JSON body matching that
status's schema). A response that breaks the document is a sandbox bug, so it is replaced by
a 500 envelope naming the mismatch, which every client sees, and kept in
``app.state.server_errors``, which ``Sandbox`` re-raises. The sandbox's own test suite runs
with it on, so every response any test receives, over any client, is checked."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api.middleware import send_error
from sandbox.errors import ApiError
from sandbox.logs import safe_logger

log = safe_logger("sandbox")


STREAMED = ("text/event-stream", "multipart/x-mixed-replace")  # endless: checked as they start


def _media_type(start: Message) -> str:
    headers = dict(start.get("headers", []))
    return str(headers.get(b"content-type", b"").split(b";")[0].decode("latin-1"))


class OffDocument(ApiError):
    """A response the OpenAPI document does not allow: a bug in the sandbox."""

    status = 500
    code = "response_off_document"


@dataclass
class _Operation:
    path: str
    responses: dict[str, Any]


class DocumentCheck:
    """What checking against one document needs: its operations' path patterns, a compiled
    validator per response schema and the (schema, body) pairs that already passed. Built
    once and shared by every app of the process (a test process starts hundreds), so each
    schema is compiled, and each polled body checked, once."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = document["components"]
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path, operations)
            for path, operations in document["paths"].items()
        ]
        self.validators: dict[int, jsonschema.protocols.Validator] = {}
        self.passed: set[tuple[int, bytes]] = set()  # (schema, body) pairs already checked

    def operation(self, scope: Scope) -> _Operation | None:
        method = scope["method"].lower()
        for pattern, path, operations in self.routes:
            if pattern.match(scope["path"]):
                operation = operations.get(method)
                return None if operation is None else _Operation(path, operation["responses"])
        return None

    def validator(self, schema: dict[str, Any]) -> jsonschema.protocols.Validator:
        key = id(schema)  # the schemas live as long as the document this check holds
        validator = self.validators.get(key)
        if validator is None:
            root = {"components": self.components, **schema}
            validator = self.validators[key] = jsonschema.Draft202012Validator(root)
        return validator


@cache
def document_check() -> DocumentCheck:
    """The check of the OpenAPI document, one per process: responses do not depend on the
    issuer, which only the document's servers and OAuth URLs name."""
    from sandbox.api.openapi import issuer_free

    return DocumentCheck(issuer_free())


class ResponseCheck:
    def __init__(self, app: ASGIApp, check: DocumentCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = self.check.operation(scope) if scope["type"] == "http" else None
        if operation is None:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        flow = "hold"  # an endless stream cannot be held: "pass" it on, or "drop" it

        async def hold(message: Message) -> None:
            nonlocal flow
            if message["type"] == "http.response.start" and _media_type(message) in STREAMED:
                problem = self._problem(scope, operation, [message])
                flow = "pass" if problem is None else "drop"
                if problem is not None:
                    await self._refuse(scope, send, problem, message)
            if flow == "pass":
                await send(message)
            elif flow == "hold":
                held.append(message)

        await self.app(scope, receive, hold)
        if flow != "hold":
            return
        problem = self._problem(scope, operation, held)
        if problem is None:
            for message in held:
                await send(message)
            return
        await self._refuse(scope, send, problem, held[0])

    async def _refuse(self, scope: Scope, send: Send, problem: str, start: Message) -> None:
        error = OffDocument(problem)
        scope["app"].state.server_errors.append(error)
        log.error("%s", problem)
        request_id = scope.get("state", {}).get("request_id", "req_unknown")
        closing = (b"connection", b"close") in start.get("headers", [])
        await send_error(send, error, request_id, close=closing)

    def _problem(self, scope: Scope, operation: _Operation, held: list[Message]) -> str | None:
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if start is None:
            return None  # nothing was answered (the client went away)
        status = start["status"]
        where = f"{scope['method']} {operation.path} answered {status}"
        declared = operation.responses.get(str(status)) or operation.responses.get("default")
        if declared is None:
            return f"{where}, a status the OpenAPI document does not declare"
        content_type = _media_type(start)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        media = declared.get("content", {})
        if not media:
            return f"{where} with a body it declares none for" if body else None
        if content_type not in media:
            return f"{where} as {content_type or 'no content type'}, not {', '.join(media)}"
        schema = media[content_type].get("schema")
        if schema is None or content_type != "application/json":
            return None
        # polled lists repeat the same bytes: check them once
        seen = (id(schema), hashlib.blake2b(body, digest_size=16).digest())
        passed = self.check.passed
        if seen in passed:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return f"{where} with a body that is not JSON"
        error = jsonschema.exceptions.best_match(self.check.validator(schema).iter_errors(document))
        if error is None:
            if len(passed) > 1024:
                passed.clear()
            passed.add(seen)
            return None
        at = "/".join(str(p) for p in error.absolute_path)
        return f"{where} with a body the OpenAPI document refuses at /{at}: {error.message}"
