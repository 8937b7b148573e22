"""The push's HTTP client: treq over an Agent that checks the receiver's certificate
against the configured CA (or the system's trust store), with a timeout per POST.

One connection is kept open to the receiver (HTTP/1.1 keep-alive) and reused while
events flow: a TLS handshake per event cost the gateway's reactor enough CPU to delay
the key's INVITE when 20 transfers ran at once (``bench.wire --topology two-pbx``). An
idle connection is closed after :data:`IDLE_CLOSE` seconds, before a receiver's own
keep-alive timeout would close it under a POST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer, ssl
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from gateway.config import PushConfig
from gateway.push.services import Post

IDLE_CLOSE = 4  # seconds; receivers commonly keep an idle connection 5 s (Apache) or more


def connection_pool(reactor: Any) -> HTTPConnectionPool:
    """One persistent connection per receiver (events go one at a time anyway)."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 1
    pool.cachedConnectionTimeout = IDLE_CLOSE
    pool.retryAutomatically = False  # a POST is never sent twice by the pool itself
    return pool


def tls_policy(ca_file: str) -> BrowserLikePolicyForHTTPS:
    """Certificates must chain to ``ca_file`` (PEM) and name the host; "" uses the
    platform's trust store."""
    if not ca_file:
        return BrowserLikePolicyForHTTPS()
    ca = ssl.Certificate.loadPEM(Path(ca_file).read_bytes())
    return BrowserLikePolicyForHTTPS(trustRoot=ca)


def make_post(reactor: Any, config: PushConfig, client: Any = None) -> Post:
    """A :data:`Post` to ``config.url``. ``client`` replaces the real one in tests
    (``treq.testing.StubTreq``)."""
    if client is None:
        agent = Agent(reactor, contextFactory=tls_policy(config.ca_file),
                      connectTimeout=config.timeout, pool=connection_pool(reactor))
        client = HTTPClient(agent)

    @defer.inlineCallbacks
    def exchange(raw: bytes, headers: dict[str, str]) -> Any:
        # never follow a redirect: a 303 would turn the POST into a GET elsewhere, and
        # its 200 would count as delivered
        response = yield client.post(config.url, data=raw, headers=headers,
                                     allow_redirects=False, reactor=reactor)
        yield treq.collect(response, _discard)  # read (not kept): the connection is reused
        return response.code

    def post(raw: bytes, headers: dict[str, str]) -> defer.Deferred[int]:
        """The whole exchange, the answer's body included, within ``push.timeout``."""
        d: defer.Deferred[int] = exchange(raw, headers)
        return d.addTimeout(config.timeout, reactor)

    return post


def _discard(_: bytes) -> None:
    """The receiver's answer body is not needed; it is read without being kept."""
