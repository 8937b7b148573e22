"""AMI client on Twisted.

- :class:`AmiProtocol` is the wire: every action gets an ActionID and a Deferred; a
  response that opens an event list (``EventList: start``) fires once its ``Complete``
  event arrives; events that answer no action go to the :class:`EventBus`. On
  connection loss every pending action fails with :class:`AmiNotConnected`; each action
  has its own time limit on the injected clock.
- :class:`AmiClient` keeps one logged-in connection with
  :class:`twisted.application.internet.ClientService` (reconnect with backoff); the login
  (plain or MD5 challenge) is its ``prepareConnection`` step.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.ami.codec import AmiMessage, AmiParser, HeaderItems, encode_action
from gateway.ami.errors import AmiActionError, AmiNotConnected, AmiTimeout

EventCallback = Callable[[AmiMessage], object]


@dataclass(frozen=True)
class AmiResult:
    """A response, and the events of its list when the action returns one."""

    response: AmiMessage
    events: tuple[AmiMessage, ...] = ()


@dataclass
class _Pending:
    action: str
    deferred: defer.Deferred[AmiResult]
    timer: IDelayedCall
    response: AmiMessage | None = None
    events: list[AmiMessage] = field(default_factory=list)


class EventBus:
    """Event subscription by name (``None``: every event) and by header values, e.g.
    ``where={"Linkedid": "1795.0"}`` for one call or ``{"Channel": "PJSIP/seat1-…"}``."""

    def __init__(self, log: Any) -> None:
        self._subscribers: list[
            tuple[frozenset[str] | None, tuple[tuple[str, str], ...], EventCallback]] = []
        self._log = log

    def subscribe(self, callback: EventCallback, names: Iterable[str] | None = None,
                  where: Mapping[str, str] | None = None) -> None:
        self._subscribers.append((frozenset(names) if names is not None else None,
                                  tuple((where or {}).items()), callback))

    def unsubscribe(self, callback: EventCallback) -> None:
        self._subscribers = [s for s in self._subscribers if s[2] is not callback]

    def publish(self, message: AmiMessage) -> None:
        for names, where, callback in list(self._subscribers):
            if names is not None and message.event not in names:
                continue
            if any(message.get(k) != v for k, v in where):
                continue
            try:
                callback(message)
            except Exception as exc:  # one bad subscriber must not starve the others
                self._log.exception("ami.subscriber_failed", ami_event=message.event,
                                    error=str(exc))


class AmiProtocol(Protocol):
    """The AMI wire: ActionID ↔ Deferred, event lists, events to the bus."""

    transport: ITCPTransport  # set by Twisted before connectionMade

    def __init__(self, clock: IReactorTime, on_event: EventCallback, log: Any) -> None:
        self.clock = clock
        self.on_event = on_event
        self.log = log
        self.parser = AmiParser()
        self.pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._prefix = f"gw{id(self):x}-"
        self.connected_at: float | None = None

    def connectionMade(self) -> None:
        self.connected_at = self.clock.seconds()

    def dataReceived(self, data: bytes) -> None:
        injected, oversized = self.parser.injected, self.parser.oversized
        messages = self.parser.feed(data)
        if self.parser.injected > injected or self.parser.oversized > oversized:
            self.log.warning("ami.suspicious_input", injected=self.parser.injected - injected,
                             oversized=self.parser.oversized - oversized)
        for message in messages:
            self._dispatch(message)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pending, self.pending = self.pending, {}
        for item in pending.values():
            if item.timer.active():
                item.timer.cancel()
            item.deferred.errback(
                AmiNotConnected(f"AMI connection lost with {item.action} pending")
            )

    def send_action(
        self, action: str, headers: HeaderItems = (), timeout: float = 5.0
    ) -> defer.Deferred[AmiResult]:
        action_id = f"{self._prefix}{next(self._ids)}"
        data = encode_action(action, action_id, headers)  # raises before anything is sent
        d: defer.Deferred[AmiResult] = defer.Deferred()
        timer = self.clock.callLater(timeout, self._expire, action_id)
        self.pending[action_id] = _Pending(action, d, timer)
        self.transport.write(data)
        return d

    def _expire(self, action_id: str) -> None:
        item = self.pending.pop(action_id, None)
        if item is not None:
            item.deferred.errback(AmiTimeout(f"{item.action}: no response in time"))

    def _dispatch(self, message: AmiMessage) -> None:
        try:
            self._route(message)
        except Exception as exc:  # one odd message must not drop the link
            self.log.error("ami.dispatch_failed", error=str(exc), error_type=type(exc).__name__,
                           ami_event=message.event, action_id=message.action_id)

    def _route(self, message: AmiMessage) -> None:
        item = self.pending.get(message.action_id) if message.action_id else None
        if item is None:
            if message.event:
                self.on_event(message)
            return
        if message.is_response and item.response is None:
            if message.get("Response").lower() == "error":
                self._finish(message.action_id, AmiActionError(item.action, message))
                return
            item.response = message
            if message.get("EventList").lower() != "start":
                self._finish(message.action_id, AmiResult(message))
            return
        if message.event:
            if message.get("EventList").lower() == "complete":
                if item.response is None:  # Asterisk sent the list's end before its start
                    self.log.warning("ami.list_without_response", action=item.action)
                    self._finish(message.action_id, AmiResult(message, tuple(item.events)))
                    return
                self._finish(message.action_id, AmiResult(item.response, tuple(item.events)))
            else:
                item.events.append(message)
            # Events that answer an action (OriginateResponse …) also go to the bus.
            self.on_event(message)

    def _finish(self, action_id: str, outcome: AmiResult | Exception) -> None:
        item = self.pending.pop(action_id)
        if item.timer.active():
            item.timer.cancel()
        if isinstance(outcome, Exception):
            item.deferred.errback(outcome)
        else:
            item.deferred.callback(outcome)


class _AmiFactory(Factory):
    def __init__(self, client: AmiClient) -> None:
        self.client = client

    def buildProtocol(self, addr: object) -> AmiProtocol:
        return self.client.make_protocol()


class AmiClient:
    """One logged-in AMI connection, kept up by ClientService."""

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        username: str,
        secret: str,
        *,
        clock: IReactorTime,
        log: Any | None = None,
        auth: str = "md5",
        login_timeout: float = 5.0,
    ) -> None:
        self.username = username
        self._secret = secret
        self.auth = auth
        self.clock = clock
        self.login_timeout = login_timeout
        self.log = log if log is not None else structlog.get_logger("gateway.ami")
        self.events = EventBus(self.log)
        self.on_login: list[Callable[[], object]] = []  # called after every login
        self.logins = 0  # logins since start: the first, then one per reconnect
        self.current: AmiProtocol | None = None
        self._trouble = ""  # what failed last (logged once until it changes or clears)
        self.service = ClientService(
            _Reporting(endpoint, self),
            _AmiFactory(self),
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=10.0),
            clock=clock,
            prepareConnection=self._prepare,
        )

    def make_protocol(self) -> AmiProtocol:
        return _ClientProtocol(self)

    @property
    def connected(self) -> bool:
        return self.current is not None

    def action(
        self, action: str, headers: HeaderItems = (), timeout: float = 5.0
    ) -> defer.Deferred[AmiResult]:
        """Send an action on the live connection; fails at once when there is none."""
        if self.current is None:
            return defer.fail(AmiNotConnected(f"{action}: AMI is not connected"))
        return self.current.send_action(action, headers, timeout)

    def whenConnected(self) -> defer.Deferred[Any]:
        return self.service.whenConnected()

    def _prepare(self, protocol: Any) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._login(protocol))

    async def _login(self, protocol: AmiProtocol) -> None:
        t = self.login_timeout
        try:
            if self.auth == "md5":
                challenge = await protocol.send_action("Challenge", {"AuthType": "MD5"}, t)
                key = hashlib.md5(  # noqa: S324 - AMI's challenge login is MD5 by protocol
                    (challenge.response.get("Challenge") + self._secret).encode()
                ).hexdigest()
                headers = {"AuthType": "MD5", "Username": self.username, "Key": key}
            else:
                headers = {"Username": self.username, "Secret": self._secret}
            await protocol.send_action("Login", headers, t)
        except AmiActionError as exc:
            self.trouble("ami.login_failed", f"refused: {exc}")
            raise
        except AmiTimeout as exc:
            banner = protocol.parser.banner
            self.trouble("ami.login_failed", f"no answer to the login in {t:g} s ({exc}); "
                         + (f"the server said {banner[:80]!r}" if banner else
                            "the server sent no AMI banner: is this an AMI port?"))
            raise
        self.current = protocol
        self._trouble = ""
        self.logins += 1
        self.log.info("ami.connected", banner=protocol.parser.banner, username=self.username)
        for hook in list(self.on_login):
            hook()

    def trouble(self, event: str, why: str) -> None:
        """Log a failure to connect or log in, once until it changes or a login works
        (ClientService tries again and again)."""
        if why != self._trouble:
            self._trouble = why
            self.log.error(event, username=self.username, error=why)

    def _lost(self, reason: Failure) -> None:
        # ClientService keeps at most one connection, and hands prepareConnection a proxy
        # of the protocol, so "the current one" is simply whichever was logged in.
        if self.current is not None:
            self.current = None
            self.log.warning("ami.disconnected", reason=reason.getErrorMessage())


@implementer(IStreamClientEndpoint)
class _Reporting:
    """The AMI endpoint, with each failed connection attempt reported to the client."""

    def __init__(self, endpoint: IStreamClientEndpoint, client: AmiClient) -> None:
        self.endpoint, self.client = endpoint, client

    def connect(self, factory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        d = self.endpoint.connect(factory)

        def failed(failure: Failure) -> Failure:
            self.client.trouble("ami.connect_failed", failure.getErrorMessage())
            return failure

        return d.addErrback(failed)


class _ClientProtocol(AmiProtocol):
    def __init__(self, client: AmiClient) -> None:
        super().__init__(client.clock, client.events.publish, client.log)
        self.client = client

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.client._lost(reason)
