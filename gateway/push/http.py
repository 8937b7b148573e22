"""The push's HTTP client: treq over an Agent that checks the receiver's certificate
against the configured CA (or the system's trust store), with a timeout per POST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer, ssl
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from gateway.config import PushConfig
from gateway.push.services import Post


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
                      connectTimeout=config.timeout)
        client = HTTPClient(agent)

    @defer.inlineCallbacks
    def post(raw: bytes, headers: dict[str, str]) -> Any:
        response = yield client.post(config.url, data=raw, headers=headers,
                                     timeout=config.timeout, reactor=reactor)
        yield treq.content(response)  # read it all: the connection can be reused
        return response.code

    return post
