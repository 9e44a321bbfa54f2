from __future__ import annotations

from starlette.datastructures import Headers

from sandbox.caller import Proxies, caller_of, client_address, credential_of


def scope(peer: str, headers: dict[str, str]) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 5000),
        "scheme": "http",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


def test_forwarded_headers_only_from_trusted_proxies() -> None:
    forwarded = {"x-forwarded-for": "198.51.100.7, 10.0.0.2", "x-forwarded-proto": "https"}
    proxies = Proxies.parse(["10.0.0.0/8"])
    assert client_address(scope("10.0.0.1", forwarded), proxies) == ("198.51.100.7", "https")
    # an untrusted peer cannot claim another address or https
    assert client_address(scope("203.0.113.9", forwarded), proxies) == ("203.0.113.9", "http")
    assert client_address(scope("10.0.0.1", forwarded), Proxies()) == ("10.0.0.1", "http")
    # a spoofed left-most entry is not believed: the right-most untrusted hop wins
    spoofed = {"x-forwarded-for": "127.0.0.1, 198.51.100.7"}
    assert client_address(scope("10.0.0.1", spoofed), proxies)[0] == "198.51.100.7"


def test_credentials_bearer_first_then_cookie() -> None:
    assert credential_of(Headers({"authorization": "Bearer sg_abc"})) == "sg_abc"
    assert credential_of(Headers({"cookie": "a=b; sg_session=s123"})) == "s123"
    assert credential_of(Headers({"authorization": "Basic x"})) is None
    caller = caller_of(
        scope("127.0.0.1", {"user-agent": "ua", "authorization": "bearer t"}), Proxies()
    )
    assert (caller.ip, caller.user_agent, caller.credential) == ("127.0.0.1", "ua", "t")


def test_x_api_key_wins_over_a_bearer_meant_for_a_proxy() -> None:
    # A private Space's gate takes the Hugging Face token in Authorization; ours travels in
    # X-API-Key and must be the one forwarded to the guardian.
    both = Headers({"authorization": "Bearer hf_space_gate", "x-api-key": "sg_ours"})
    assert credential_of(both) == "sg_ours"
    assert credential_of(Headers({"x-api-key": "  "})) is None


def test_on_a_space_the_last_forwarded_hop_is_the_client() -> None:
    # The Space's proxy appends the address it saw; what the client wrote before it is not
    # believed, and without the header the peer is the client.
    space = Proxies.parse([], space_host="owner-hub.hf.space")
    forwarded = {"x-forwarded-for": "127.0.0.1, 198.51.100.7", "x-forwarded-proto": "https"}
    assert client_address(scope("10.16.4.2", forwarded), space) == ("198.51.100.7", "https")
    assert client_address(scope("10.16.4.2", {}), space) == ("10.16.4.2", "http")
    junk = {"x-forwarded-for": "198.51.100.7, not-an-ip"}
    assert client_address(scope("10.16.4.2", junk), space)[0] == "10.16.4.2"
    # configured trusted_proxies win over the Space default; without SPACE_HOST, no change
    named = Proxies.parse(["10.0.0.0/8"], space_host="owner-hub.hf.space")
    assert not named.one_unnamed_hop
    assert client_address(scope("10.16.4.2", forwarded), Proxies.parse([])) == (
        "10.16.4.2",
        "http",
    )
