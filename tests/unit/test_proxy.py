"""Which address is the client's behind a reverse proxy (web/proxy.py)."""

from __future__ import annotations

from broadcaster.web.proxy import forwarded_client, networks

PROXIES = networks(["127.0.0.1", "10.0.0.0/8"])


def test_a_peer_that_is_no_trusted_proxy_is_the_client_whatever_it_writes() -> None:
    assert forwarded_client("203.0.113.9", "198.51.100.7", PROXIES) == "203.0.113.9"


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    # The client wrote 1.2.3.4 itself; the proxy chain appended the real address.
    chain = "1.2.3.4, 198.51.100.7, 10.1.2.3"
    assert forwarded_client("127.0.0.1", chain, PROXIES) == "198.51.100.7"


def test_without_a_header_or_with_only_proxies_in_it() -> None:
    assert forwarded_client("127.0.0.1", "", PROXIES) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "10.0.0.5", PROXIES) == "10.0.0.5"
    assert forwarded_client("127.0.0.1", "not an address", PROXIES) == "not an address"
