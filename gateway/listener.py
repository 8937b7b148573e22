"""A listening endpoint as a Twisted service that says whether it is listening.

Twisted's ``StreamServerEndpointService`` keeps that to itself; readiness (systemd's
``READY=1``) needs it, so this one keeps the port it got, or the reason it got none.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.python.failure import Failure


class Listener(Service):
    def __init__(self, name: str, endpoint: IStreamServerEndpoint,
                 factory: IProtocolFactory, log: Any) -> None:
        self.name, self.endpoint, self.factory, self.log = name, endpoint, factory, log
        self.port: IListeningPort | None = None
        self.error = ""

    @property
    def listening(self) -> bool:
        return self.port is not None

    def startService(self) -> None:
        super().startService()
        self.endpoint.listen(self.factory).addCallbacks(self._listening, self._refused)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self.log.info("listen.up", listener=self.name, address=str(port.getHost()))

    def _refused(self, failure: Failure) -> None:
        self.error = failure.getErrorMessage()
        self.log.error("listen.failed", listener=self.name, error=self.error)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return defer.succeed(None)
        stopped = port.stopListening()
        return stopped if isinstance(stopped, defer.Deferred) else defer.succeed(None)
