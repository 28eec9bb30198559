"""JSON-RPC 2.0 decoding and encoding: valid shapes, every kind of bad input, round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from brummer.mcp import jsonrpc
from brummer.mcp._schema import parse_time, validate
from brummer.mcp.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Notification,
    Request,
    Response,
    RPCError,
    decode,
    decode_message,
)


def test_request_notification_and_response_are_told_apart() -> None:
    req = decode_message({"jsonrpc": "2.0", "id": 7, "method": "ping"})
    note = decode_message({"jsonrpc": "2.0", "method": "notifications/initialized"})
    resp = decode_message({"jsonrpc": "2.0", "id": "a", "result": {}})
    assert req == Request(7, "ping", None)
    assert note == Notification("notifications/initialized", None)
    assert resp == Response("a", {}, None)


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ([1, 2], None),
        ("text", None),
        ({"jsonrpc": "1.0", "id": 3, "method": "ping"}, 3),
        ({"id": 3, "method": "ping"}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": 12}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": ""}, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "x", "params": "nope"}, 3),
        ({"jsonrpc": "2.0", "id": None, "method": "x"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "x"}, None),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "x"}, None),
        ({"jsonrpc": "2.0", "id": 4}, 4),
        ({"jsonrpc": "2.0", "id": 4, "error": "bad"}, None),
    ],
)
def test_invalid_messages_are_invalid_request_with_the_id_when_readable(
    message: Any, expected_id: Any
) -> None:
    with pytest.raises(RPCError) as info:
        decode_message(message)
    assert info.value.code == INVALID_REQUEST
    assert info.value.request_id == expected_id
    response = info.value.to_response()
    assert response["id"] == expected_id
    assert response["error"]["code"] == INVALID_REQUEST


@pytest.mark.parametrize("body", [b"{", b"", b"\xff\xfe", b"{'single': 1}", b"[1,"])
def test_bodies_that_are_not_json_are_parse_errors(body: bytes) -> None:
    with pytest.raises(RPCError) as info:
        decode(body)
    assert info.value.code == PARSE_ERROR


def test_empty_batch_is_invalid_request() -> None:
    with pytest.raises(RPCError) as info:
        decode(b"[]")
    assert info.value.code == INVALID_REQUEST


def test_batch_keeps_good_messages_and_marks_bad_ones_in_place() -> None:
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "id": 2},
            5,
            {"jsonrpc": "2.0", "method": "notifications/x"},
        ]
    )
    decoded = decode(body)
    assert decoded.batch
    kinds = [type(m).__name__ for m in decoded.messages]
    assert kinds == ["Request", "RPCError", "RPCError", "Notification"]
    bad = decoded.messages[1]
    assert isinstance(bad, RPCError)
    assert bad.request_id == 2


def test_single_message_is_not_a_batch() -> None:
    decoded = decode(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}')
    assert not decoded.batch
    assert decoded.messages == (Request(1, "ping", {}),)


def test_helpers_build_the_documented_shapes() -> None:
    assert jsonrpc.result_response(1, {"a": 1}) == {"jsonrpc": "2.0", "id": 1, "result": {"a": 1}}
    assert jsonrpc.error_response(None, -32601, "nope") == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32601, "message": "nope"},
    }
    assert jsonrpc.error_response(2, -32602, "bad", {"x": 1})["error"]["data"] == {"x": 1}
    assert jsonrpc.notification("n") == {"jsonrpc": "2.0", "method": "n"}
    assert jsonrpc.request(3, "m", {"p": 1}) == {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "m",
        "params": {"p": 1},
    }


def test_encode_is_compact_utf8_and_survives_odd_values() -> None:
    data = jsonrpc.encode({"text": "grüße", "n": 1})
    assert data == '{"text":"grüße","n":1}'.encode()
    assert json.loads(jsonrpc.encode({"x": object})) == {"x": str(object)}


_ids = st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=20))
_params = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4)


@given(request_id=_ids, method=st.text(min_size=1, max_size=30), params=_params)
def test_request_round_trips(request_id: int | str, method: str, params: dict[str, Any]) -> None:
    body = jsonrpc.encode(jsonrpc.request(request_id, method, params))
    assert decode(body).messages == (Request(request_id, method, params),)


@given(st.binary(max_size=64))
def test_decode_never_raises_anything_but_rpc_error(body: bytes) -> None:
    codes: list[int] = []
    try:
        decoded = decode(body)
    except RPCError as err:
        codes.append(err.code)
    else:
        assert decoded.messages
    assert set(codes) <= {PARSE_ERROR, INVALID_REQUEST}


def test_schema_validation_reports_every_problem() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10},
            "level": {"type": "string", "enum": ["info", "error"]},
            "flag": {"type": "boolean"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    assert validate(schema, {"name": "dev", "limit": 3, "level": "info", "flag": True}) == []
    problems = validate(schema, {"limit": 0, "level": "loud", "flag": 1, "extra": 1})
    text = " | ".join(problems)
    assert "arguments.name is required" in text
    assert "arguments.limit must be ≥ 1" in text
    assert "arguments.level must be one of" in text
    assert "arguments.flag must be of type boolean" in text
    assert "arguments.extra is not a known argument" in text
    assert validate(schema, {"name": "x", "limit": True}) == [
        "arguments.limit must be of type integer, not bool"
    ]


def test_parse_time_takes_rfc3339_and_durations() -> None:
    stamp = parse_time("2024-05-01T12:00:00Z")
    assert stamp.isoformat() == "2024-05-01T12:00:00+00:00"
    assert parse_time("2024-05-01T12:00:00").tzinfo is not None
    ago = parse_time("5m", now=stamp)
    assert (stamp - ago).total_seconds() == 300
    with pytest.raises(ValueError):
        parse_time("yesterday-ish")


def test_deeply_nested_json_is_a_parse_error_not_a_crash() -> None:
    # json.loads raises RecursionError (not ValueError) for very deep nesting.
    for body in (b"[" * 100_000, b'{"a":' * 100_000):
        with pytest.raises(RPCError) as info:
            decode(body)
        assert info.value.code == PARSE_ERROR
