"""JSON-RPC 2.0: decoding and encoding of the messages the MCP server and client exchange.

Decoding never raises for a bad *message*: a malformed element of a batch becomes an
:class:`RPCError` in its place, so the rest of the batch is still served. Only a body that
is not JSON at all (or an empty batch) raises :class:`RPCError` from :func:`decode`.

Error codes are the ones JSON-RPC 2.0 fixes (:data:`PARSE_ERROR`, :data:`INVALID_REQUEST`,
:data:`METHOD_NOT_FOUND`, :data:`INVALID_PARAMS`, :data:`INTERNAL_ERROR`) and the one MCP
adds for an unknown resource (:data:`RESOURCE_NOT_FOUND`).

Not for: transports. This module knows nothing about HTTP or stdio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from brummer.contracts import ThreadSafety, contract

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RESOURCE_NOT_FOUND",
    "Decoded",
    "Notification",
    "RPCError",
    "Request",
    "Response",
    "decode",
    "decode_message",
    "encode",
    "error_response",
    "notification",
    "request",
    "result_response",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RESOURCE_NOT_FOUND = -32002

RequestId = str | int


@contract(ThreadSafety.TS)
class RPCError(Exception):
    """A JSON-RPC error: raised by handlers, answered to the peer as an error response.

    Thread safety: TS (immutable after construction).

    Args:
        code: the JSON-RPC error code (-32700, -32600, -32601, -32602, -32603, -32002, ...).
        message: a short sentence saying what was wrong.
        data: optional extra facts, JSON-serialisable.
        id: the id of the request it answers, when known.
    """

    def __init__(
        self, code: int, message: str, data: Any = None, *, request_id: RequestId | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.request_id = request_id

    @contract(ThreadSafety.TS)
    def to_response(self) -> dict[str, Any]:
        """The error response object for this error.

        Thread safety: TS. Pure.
        """
        return error_response(self.request_id, self.code, self.message, self.data)

    def __repr__(self) -> str:
        return f"RPCError({self.code}, {self.message!r})"


@contract(ThreadSafety.TS)
@attrs.frozen
class Request:
    """A request (it has an id and wants an answer).

    Thread safety: TS (frozen value object).
    """

    id: RequestId
    method: str
    params: Mapping[str, Any] | list[Any] | None = None


@contract(ThreadSafety.TS)
@attrs.frozen
class Notification:
    """A notification (no id; never answered).

    Thread safety: TS (frozen value object).
    """

    method: str
    params: Mapping[str, Any] | list[Any] | None = None


@contract(ThreadSafety.TS)
@attrs.frozen
class Response:
    """A response from the peer: ``result`` or ``error`` (the error object as a dict).

    Thread safety: TS (frozen value object).
    """

    id: RequestId | None
    result: Any = None
    error: Mapping[str, Any] | None = None


Message = Request | Notification | Response


@contract(ThreadSafety.TS)
@attrs.frozen
class Decoded:
    """A decoded body: its messages in order, and whether it was a batch.

    Thread safety: TS (frozen value object). An element that is not a valid message is an
    :class:`RPCError` carrying the id when one could be read.
    """

    messages: tuple[Request | Notification | Response | RPCError, ...]
    batch: bool


def _valid_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


@contract(ThreadSafety.TS)
def decode_message(obj: object) -> Request | Notification | Response:
    """Turn one parsed JSON value into a message.

    Thread safety: TS. Pure.

    Raises:
        RPCError: INVALID_REQUEST when ``obj`` is not a JSON-RPC 2.0 message (the error
            carries the id when a valid one was present).
    """
    if not isinstance(obj, dict):
        raise RPCError(INVALID_REQUEST, "Invalid Request: a message must be a JSON object")
    raw_id = obj.get("id")
    good_id = raw_id if _valid_id(raw_id) else None
    if obj.get("jsonrpc") != "2.0":
        raise RPCError(
            INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be exactly "2.0"', request_id=good_id
        )
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str) or not method:
            raise RPCError(
                INVALID_REQUEST, 'Invalid Request: "method" must be a string', request_id=good_id
            )
        params = obj.get("params")
        if params is not None and not isinstance(params, dict | list):
            raise RPCError(
                INVALID_REQUEST, 'Invalid Request: "params" must be an object', request_id=good_id
            )
        if "id" not in obj:
            return Notification(method, params)
        if good_id is None:
            raise RPCError(INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer')
        return Request(good_id, method, params)
    if "result" in obj or "error" in obj:
        error = obj.get("error")
        if error is not None and not isinstance(error, dict):
            raise RPCError(INVALID_REQUEST, 'Invalid Request: "error" must be an object')
        return Response(good_id, obj.get("result"), error)
    raise RPCError(
        INVALID_REQUEST, 'Invalid Request: no "method", "result" or "error"', request_id=good_id
    )


@contract(ThreadSafety.TS)
def decode(body: bytes | str) -> Decoded:
    """Decode a request body: one message or a batch (a JSON array).

    Thread safety: TS. Pure.

    Raises:
        RPCError: PARSE_ERROR when the body is not JSON (or not UTF-8); INVALID_REQUEST for
            an empty batch.
    """
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RPCError(PARSE_ERROR, f"Parse error: {exc}") from exc
    if isinstance(parsed, list):
        if not parsed:
            raise RPCError(INVALID_REQUEST, "Invalid Request: empty batch")
        items: list[Request | Notification | Response | RPCError] = []
        for element in parsed:
            try:
                items.append(decode_message(element))
            except RPCError as err:
                items.append(err)
        return Decoded(tuple(items), batch=True)
    return Decoded((decode_message(parsed),), batch=False)


@contract(ThreadSafety.TS)
def encode(message: Any) -> bytes:
    """Compact UTF-8 JSON for a message or a list of messages.

    Thread safety: TS. Pure. Values JSON cannot carry are written as strings.
    """
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@contract(ThreadSafety.TS)
def result_response(request_id: RequestId | None, result: Any) -> dict[str, Any]:
    """A success response.

    Thread safety: TS. Pure.
    """
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


@contract(ThreadSafety.TS)
def error_response(
    request_id: RequestId | None, code: int, message: str, data: Any = None
) -> dict[str, Any]:
    """An error response (``id`` is null when the request's id could not be read).

    Thread safety: TS. Pure.
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


@contract(ThreadSafety.TS)
def notification(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A notification message.

    Thread safety: TS. Pure.
    """
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message


@contract(ThreadSafety.TS)
def request(
    request_id: RequestId, method: str, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A request message.

    Thread safety: TS. Pure.
    """
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message
