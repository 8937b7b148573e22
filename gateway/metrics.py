"""``GET /metrics``: Prometheus text, with HELP and TYPE, by prometheus_client.

Two kinds of figure: what the transfer service counts as bridges end and answer
(:class:`TransferMeter`, the service's :class:`~gateway.transfer.services.Meter`), and
what the gateway's parts hold at scrape time (:class:`Snapshot`: Redis, AMI, the
bridge log and spool, the FastAGI server, the inbound stream, the 12345 feed's lag).
Counters start at 0 with each process, as Prometheus expects of a counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

#: Seconds from the key to the other line's answer: the 15 s and 20 s of the centres'
#: service levels are bucket edges.
ANSWER_BUCKETS = (1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)


class TransferMeter:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._ended = Counter("linkgw_bridges_ended", "Bridges ended, by direction and "
                              "outcome (recovered: closed by a gateway that adopted it)",
                              ["direction", "outcome", "recovered"], registry=registry)
        self._answer = Histogram("linkgw_key_to_answer_seconds", "Seconds from the key to "
                                 "the other line's answer", ["direction"],
                                 buckets=ANSWER_BUCKETS, registry=registry)

    def ended(self, direction: str, outcome: str, recovered: bool) -> None:
        self._ended.labels(direction or "unknown", outcome or "unknown",
                           "yes" if recovered else "no").inc()

    def answered(self, direction: str, seconds: float) -> None:
        self._answer.labels(direction or "unknown").observe(max(seconds, 0.0))


@dataclass(frozen=True)
class Figure:
    name: str
    help: str
    kind: str  # "gauge" or "counter" (a counter's name has no _total: it is added)
    read: Callable[[], float]


class Snapshot:
    """Figures read from the gateway's parts when Prometheus asks."""

    def __init__(self, figures: list[Figure]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        for figure in self.figures:
            family = GaugeMetricFamily if figure.kind == "gauge" else CounterMetricFamily
            yield family(figure.name, figure.help, value=float(figure.read()))

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time only


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode("utf-8")
