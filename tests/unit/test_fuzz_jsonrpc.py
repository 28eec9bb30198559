"""Fuzzing JSON-RPC decoding: only RPCError ever escapes, and every batch element is accounted for."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from brummer.mcp.jsonrpc import (
    PARSE_ERROR,
    Decoded,
    Notification,
    Request,
    Response,
    RPCError,
    decode,
)

_ids = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.booleans(), st.floats())
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_message = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "id": _ids,
        "method": st.one_of(st.sampled_from(["initialize", "tools/call", ""]), _values),
        "params": _values,
        "result": _values,
        "error": _values,
    },
)
_body = st.one_of(
    _message.map(json.dumps),
    st.lists(st.one_of(_message, _values), max_size=5).map(json.dumps),
    st.binary(max_size=60),
    st.text(max_size=60),
    st.sampled_from(["[]", '{"jsonrpc":"2.0","method":"x","id":1' * 3, "\xff"]),
)


@given(_body)
def test_decode_raises_only_rpc_errors(body: bytes | str) -> None:
    try:
        decoded = decode(body)
    except RPCError as err:
        code = err.code
        assert code in (PARSE_ERROR, -32600)
        return
    assert isinstance(decoded, Decoded)
    for item in decoded.messages:
        assert isinstance(item, Request | Notification | Response | RPCError)
    if decoded.batch:
        assert len(decoded.messages) == len(json.loads(body))


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000], ids=["array", "object"])
def test_deeply_nested_body_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(RPCError) as info:
        decode(body)
    assert info.value.code == PARSE_ERROR
