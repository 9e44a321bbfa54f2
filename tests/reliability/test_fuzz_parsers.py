"""Property tests: no input crashes the parsers the guardian runs on untrusted text, and every
refusal is one of our typed errors (never a KeyError, IndexError, RecursionError ...).

Bounded: each property runs a fixed number of examples (`FUZZ_EXAMPLES`), no deadline, so
`make test` stays fast under load; `make soak` runs them with ten times more.
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import messages, pyfun, readonly_sql
from protocol.contract import decode_params
from protocol.errors import Forbidden, InvalidParams, MalformedFrame
from protocol.methods import METHODS
from tests.helpers import EXAMPLE_CONFIG

FUZZ_EXAMPLES = int(os.environ.get("SEALGATE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_leaf, inner, max_size=5),
    max_leaves=25,
)
_message_like = st.one_of(
    _values,
    st.tuples(st.integers(-1, 4), _values, _values, _values).map(list),
    st.tuples(st.integers(-1, 4), _values, _values).map(list),
    st.tuples(
        st.just(0),
        st.integers(-5, 2**33),
        st.sampled_from(sorted(METHODS)) | st.text(max_size=70),
        st.dictionaries(st.text(max_size=12), _values, max_size=6),
    ).map(list),
)


@FUZZ
@given(_message_like)
def test_message_parsing_answers_a_message_or_malformed_frame(obj: object) -> None:
    try:
        parsed = messages.parse(obj)
    except MalformedFrame:
        return
    assert isinstance(
        parsed,
        messages.Request | messages.Response | messages.Notification | messages.StreamChunk,
    )


@FUZZ
@given(
    st.sampled_from(sorted(METHODS)),
    st.dictionaries(
        st.sampled_from(["caller", "prompt", "model", "tool", "messages", "max_tokens", "x"])
        | st.text(max_size=12),
        _values,
        max_size=6,
    ),
)
def test_every_method_schema_answers_ok_or_invalid_params(method: str, params: dict) -> None:
    """The guardian's decoding of a permitted call's params (guardian/server.py)."""
    try:
        decode_params(METHODS[method].params, params)
    except InvalidParams:
        pass


# -- .pyfun ---------------------------------------------------------------------------------

_EXAMPLE_LINES = EXAMPLE_CONFIG.read_text().splitlines()
_pyfun_line = st.one_of(
    st.sampled_from(_EXAMPLE_LINES),
    st.sampled_from(
        [
            "[HUB]",
            "[HUB_END]",
            "[LLM_PROVIDER.x]",
            "[LLM_PROVIDER.x_END]",
            "[MODEL.m]",
            "[MODEL.m_END]",
            "[ROLE.r]",
            "[ROLE.r_END]",
            "[TOOL.t]",
            "[TOOL.t_END]",
            "[DB_QUERY]",
            "[DB_QUERY_END]",
            'port = "99999"',
            'fallback_to = "x"',
            'base_url = "http://[::1"',
            'timeout_sec = "-1"',
            'system_prompt = """',
            '"""',
            "key = ",
            "= value",
        ]
    ),
    st.text(max_size=60),
)


@FUZZ
@given(st.lists(_pyfun_line, max_size=40))
def test_pyfun_parses_or_says_file_and_line(lines: list[str]) -> None:
    try:
        config = pyfun.parse("\n".join(lines), "fuzz.pyfun")
    except pyfun.PyfunError as exc:
        assert re.match(r"^fuzz\.pyfun:\d+: ", str(exc)), str(exc)
        return
    assert config.source == "fuzz.pyfun"


@FUZZ
@given(st.binary(max_size=400))
def test_pyfun_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        pyfun.parse(raw.decode("utf-8", "replace"), "fuzz.pyfun")
    except pyfun.PyfunError:
        pass


# -- the read-only SQL checker -----------------------------------------------------------------

POLICY = readonly_sql.Policy.of(["customers", "orders", "shop.items"])
_sql_token = st.sampled_from(
    [
        "SELECT", "*", "1", "FROM", "customers", "orders", "shop.items", "pg_authid",
        "sealgate.users", "WITH", "x", "AS", "(", ")", ",", "WHERE", "=", "'a'", ";",
        "UNION", "ALL", "INSERT", "INTO", "DELETE", "UPDATE", "SET", "FOR", "UPDATE",
        "count(*)", "pg_sleep(1)", "lower(name)", "JOIN", "ON", "LATERAL", "RECURSIVE",
        "--", "/*", "*/", '"Customers"', "COPY", "TO", "STDOUT", "VALUES", "LIMIT", "10",
        "xmltable", "ROWS", "FROM", "generate_series(1,2)", "\x00", "$$", "E'\\x'",
    ]
)  # fmt: skip
_sql = st.one_of(
    st.lists(_sql_token, max_size=25).map(" ".join),
    st.text(max_size=120),
)


@FUZZ
@given(_sql)
def test_the_sql_checker_passes_or_refuses_with_a_typed_error(sql: str) -> None:
    try:
        kept = readonly_sql.check(sql, POLICY)
    except (InvalidParams, Forbidden) as exc:
        assert exc.message  # a sentence for the caller
        return
    assert isinstance(kept, str)
    # What passed reads only allowlisted tables: checking the kept text again passes too.
    readonly_sql.check(kept, POLICY)
