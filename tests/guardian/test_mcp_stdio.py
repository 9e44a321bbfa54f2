"""The stdio bridge's own logic; tests/e2e/test_mcp_stdio.py drives it end to end."""

from __future__ import annotations

import argparse

import pytest

from guardian.ctl import EXIT_USAGE, main, parser
from guardian.mcp_stdio import BridgeError, check_url, headers_for


def args(*extra: str) -> argparse.Namespace:
    return parser().parse_args(["mcp-stdio", "--url", "https://gw.example/mcp", *extra])


def test_the_token_comes_from_the_environment() -> None:
    assert headers_for(args(), {"SEALGATE_TOKEN": "sg_1"}) == {"Authorization": "Bearer sg_1"}
    assert headers_for(args("--token-env", "MINE"), {"MINE": "sg_2"}) == {
        "Authorization": "Bearer sg_2"
    }
    assert headers_for(args(), {}) == {}  # open mode: no header at all


def test_a_private_space_gets_both_tokens_in_their_headers() -> None:
    env = {"SEALGATE_TOKEN": "sg_1", "HF_TOKEN": "hf_gate"}
    assert headers_for(args("--x-api-key"), env) == {
        "X-API-Key": "sg_1",
        "Authorization": "Bearer hf_gate",
    }


def test_urls_must_be_http() -> None:
    assert check_url("http://127.0.0.1:7860/mcp") == "http://127.0.0.1:7860/mcp"
    with pytest.raises(BridgeError):
        check_url("file:///etc/passwd")


def test_a_missing_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp-stdio"]) == EXIT_USAGE
    assert "--url" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "http://gw.example/mcp",
        "http://10.0.0.5:7860/mcp",
        "http://[fe80::1]/sse",
        "http://127.0.0.1.gw.example/mcp",
        "http://localhost.gw.example/mcp",
    ],
)
def test_plain_http_off_loopback_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(BridgeError, match="in clear"):
        check_url(url)
    assert check_url(url, allow_insecure_http=True) == url
    assert args("--allow-insecure-http").allow_insecure_http is True


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:7860/mcp",
        "http://127.8.9.10/mcp",
        "http://[::1]:7860/mcp",
        "http://localhost:7860/sse",
        "http://app.localhost/mcp",
        "https://gw.example/mcp",
    ],
)
def test_loopback_and_https_need_no_flag(url: str) -> None:
    assert check_url(url) == url


def test_the_refusal_comes_before_any_request(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens at this address: a bridge that tried to connect would fail otherwise.
    code = main(["mcp-stdio", "--url", "http://192.0.2.1:9/mcp"])
    assert code == EXIT_USAGE
    assert "in clear" in capsys.readouterr().err
