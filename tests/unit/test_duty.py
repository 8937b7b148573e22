"""The duty phone's parts without a PBX: its PINs, its schedule, its ringer on a fake
clock, its two AGI scripts on a channel double. The lab proves the call
(tests/e2e/test_duty.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.catalogue import load_categories
from gateway.config import ConfigError, DutyConfig, load_config
from gateway.duty.ringer import DutyRinger, claim_due
from gateway.duty.say import announcement
from gateway.duty.schedule import number_for, originate, plan_ring
from gateway.duty.scripts import make_duty_scripts
from gateway.lab.fakes import ChannelDouble, null_log
from gateway.pins import PinError, officer_of, parse_pins
from gateway.records.actor import Actor
from gateway.records.errors import Conflict, Malformed, Unavailable
from gateway.schema import IDX_DUTY_DUE

CATALOGUE = load_categories(Path(__file__).resolve().parents[2] / "config/categories.yaml")
CONFIG = DutyConfig(numbers=("PJSIP/duty1", "PJSIP/duty2"), rings_per_number=2, every=300,
                    max_rings=5, ring_timeout=30)
T = "2026120300017"
NOW = 1_796_300_000.0


# -- PINs -----------------------------------------------------------------------------------

def test_pins_name_an_officer_each_and_a_wrong_one_names_no_pin() -> None:
    pins = parse_pins(" J4201:4821 , J4202:19370001")
    assert pins == {"J4201": "4821", "J4202": "19370001"}
    assert (officer_of(pins, "4821"), officer_of(pins, "19370001"),
            officer_of(pins, "482"), officer_of(pins, "")) == ("J4201", "J4202", None, None)


@pytest.mark.parametrize(("text", "error"), [
    ("", "no officer:PIN"), ("J4201", "entry 1 is not officer:PIN"),
    ("J4201:12", "entry 1"), ("J4201:4821,J4202:４８２１", "entry 2"),
    ("J42\r\n01:4821", "entry 1"), ("警号:4821", "entry 1"),
    ("J4201:4821,J4201:9999", "officer J4201 is given twice"),
    ("J4201:4821,J4202:4821", "entry 2: two officers have the same PIN"),
])
def test_a_wrong_pin_list_is_refused_without_showing_a_pin(text: str, error: str) -> None:
    with pytest.raises(PinError, match=error) as refused:
        parse_pins(text)
    assert "4821" not in str(refused.value)


def test_the_config_refuses_pin_identity_without_good_pins() -> None:
    text = "duty:\n  numbers: [PJSIP/duty1]\n  identity: pin\n  pins_env: PINS\n"
    with pytest.raises(ConfigError, match=r"duty\.pins_env: entry 1 is not officer:PIN"):
        _load_checked(text, {"PINS": "J4201"})
    assert _load_checked(text, {"PINS": "J4201:4821"}).duty.pins == "J4201:4821"


def _load_checked(text: str, env: dict[str, str]) -> Any:
    """The duty section with the secrets a gateway service needs besides."""
    full = text + "ami:\n  secret_env: AMI\nhttp:\n  listen: \"\"\n"
    return load_config(full, environ={"AMI": "x" * 16} | env)


@pytest.mark.parametrize(("line", "error"), [
    ("  numbers: [\"PJSIP/duty1,PJSIP/x\"]\n", "dial strings"),
    ("  numbers: [\"PJSIP/du ty\"]\n", "dial strings"),
    ("  identity: badge\n", "must be one of extension, pin"),
    ("  caller_id: \"12345\\r\\n\"\n", "1 to 20 digits"),
    ("  every: 0\n", "greater than 0"),
    ("  pins: \"J4201:4821\"\n", "secrets are not kept in the file"),
])
def test_the_duty_section_is_checked(line: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(f"duty:\n{line}", secrets=False)


# -- the schedule ---------------------------------------------------------------------------

def test_each_number_rings_its_turns_and_the_last_one_goes_on() -> None:
    assert [number_for(n, CONFIG) for n in range(1, 6)] == [
        "PJSIP/duty1", "PJSIP/duty1", "PJSIP/duty2", "PJSIP/duty2", "PJSIP/duty2"]


def test_a_ring_is_claimed_by_a_guarded_write_that_scores_the_next_one() -> None:
    ring = plan_ring(T, {"status": "received", "duty_rings": "2"}, CONFIG, NOW)
    assert ring is not None
    assert (ring.number, ring.attempt, ring.change.event) == ("PJSIP/duty2", 3,
                                                               "workorder_duty_rang")
    assert dict(ring.change.fields) == {"duty_rings": "3", "duty_rang_at":
                                        "2026-12-03T12:13:20.000Z", "duty_number": "PJSIP/duty2"}
    assert ring.change.guard == (("status", ("received",)), ("duty_rings", ("2",)))
    # the next one `every` after this ring has ended (rung out at ring_timeout at most)
    assert [(i.name, i.member, i.score) for i in ring.change.indexes] == [
        (IDX_DUTY_DUE, T, NOW + 30 + 300)]
    assert ring.change.feed == ""  # 110's own business: not on 12345's feed


def test_the_last_ring_takes_the_order_off_and_an_accepted_one_is_not_rung() -> None:
    last = plan_ring(T, {"status": "received", "duty_rings": "4"}, CONFIG, NOW)
    assert last is not None and [i.score for i in last.change.indexes] == [-1]
    assert plan_ring(T, {"status": "received", "duty_rings": "5"}, CONFIG, NOW) is None
    assert plan_ring(T, {"status": "accepted"}, CONFIG, NOW) is None
    assert plan_ring(T, {}, CONFIG, NOW) is None
    assert plan_ring(T, {"status": "received"}, DutyConfig(), NOW) is None  # no numbers


def test_the_originate_lands_in_the_duty_context_with_what_to_say() -> None:
    say = announcement(T, {"category": "noise"}, CATALOGUE)
    ring = plan_ring(T, {"status": "received"}, CONFIG, NOW, say)
    assert ring is not None
    assert originate(ring, CONFIG) == [
        ("Channel", "PJSIP/duty1"), ("Context", "linkgw-duty"), ("Exten", "s"),
        ("Priority", "1"), ("Timeout", "30000"), ("CallerID", '"12345工单" <12345>'),
        ("Variable", f"LINKGW_WORKORDER={T}"), ("Variable", f"LINKGW_DUTY_SAY={say}"),
        ("Variable", "LINKGW_DUTY_IDENTITY=extension"),
        ("Variable", "LINKGW_DUTY_NUMBER=PJSIP/duty1"), ("Async", "true")]
    assert say == "&".join(["linkgw/zh/duty_new_order", *(f"linkgw/zh/digit_{d}" for d in T),
                            "linkgw/zh/duty_category", "linkgw/zh/cat_noise"])


# -- the ringer -----------------------------------------------------------------------------

class Orders:
    """The work-order desk as the ringer and the scripts see it, in memory."""

    def __init__(self, orders: dict[str, dict[str, str]]) -> None:
        self.orders, self.due = orders, {t: NOW for t in orders}
        self.catalogue = CATALOGUE
        self.lose_to_another = False  # another gateway claims every ring first
        self.accepted: list[tuple[str, Actor]] = []
        self.down = False

    def rings_due(self, now: float, limit: int = 20) -> list[str]:
        if self.down:
            raise Unavailable("Redis: gone")
        return sorted((t for t, at in self.due.items() if at <= now),
                      key=lambda t: self.due[t])[:limit]

    def order(self, ticket: str) -> dict[str, str]:
        if self.down:
            raise Unavailable("Redis: gone")
        return dict(self.orders.get(ticket, {}))

    def stop_ringing(self, ticket: str) -> None:
        self.due.pop(ticket, None)

    def write(self, change: Any) -> bool:
        if self.lose_to_another:
            return False
        ticket = change.record.split(":", 1)[1]
        self.orders[ticket] |= dict(change.fields)
        for index in change.indexes:
            if index.score < 0:
                self.due.pop(ticket, None)
            else:
                self.due[ticket] = index.score
        return True

    def act(self, ticket: str, action: str, fields: dict[str, Any], actor: Actor
            ) -> dict[str, str]:
        """As the real desk: accepting an accepted order again is answered with the
        record as it stands (a retry); a returned one is a conflict."""
        status = self.orders[ticket].get("status")
        if status == "accepted":
            return self.orders[ticket]
        if status != "received":
            raise Conflict(f"work order is {status}: cannot accept", "loop_order")
        self.orders[ticket] |= {"status": "accepted", "accepted_note": fields["note"],
                                "accepted_by": actor.operator, "accepted_via": actor.via}
        self.accepted.append((ticket, actor))
        self.due.pop(ticket, None)
        return self.orders[ticket]


class Ami:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []
        self.fail = fail
        self.connected = True

    def action(self, action: str, headers: Any = (), timeout: float = 5.0
               ) -> defer.Deferred[Any]:
        self.sent.append((action, list(headers)))
        return defer.fail(self.fail) if self.fail else defer.succeed(None)


def ringer(orders: Orders, ami: Ami, clock: Clock) -> DutyRinger:
    return DutyRinger(CONFIG, orders, ami, clock,
                      lambda f, *a: defer.maybeDeferred(f, *a), null_log())


def test_the_ringer_rings_a_new_order_then_again_each_interval_until_accepted() -> None:
    clock = Clock()
    clock.advance(NOW)
    orders = Orders({T: {"status": "received"}, "2026120300018": {"status": "accepted"}})
    ami = Ami()
    service = ringer(orders, ami, clock)
    service.startService()
    assert [dict(h)["Channel"] for _, h in ami.sent] == ["PJSIP/duty1"]
    assert "2026120300018" not in orders.due  # accepted meanwhile: taken off, not rung
    clock.advance(329)
    assert len(ami.sent) == 1  # not before the ring's end and the interval
    clock.advance(1)
    assert [dict(h)["Channel"] for _, h in ami.sent] == ["PJSIP/duty1", "PJSIP/duty1"]
    orders.act(T, "accept", {"note": "x"}, Actor("duty", "duty1"))
    clock.advance(600)
    assert len(ami.sent) == 2
    service.stopService()


def test_no_attempt_is_spent_while_ami_is_gone() -> None:
    clock = Clock()
    clock.advance(NOW)
    orders = Orders({T: {"status": "received"}})
    ami = Ami()
    ami.connected = False
    service = ringer(orders, ami, clock)
    service.startService()
    clock.advance(3600)
    assert (ami.sent, orders.orders[T].get("duty_rings"), service.waiting) == ([], None, True)
    ami.connected = True
    clock.advance(CONFIG.poll)
    assert [dict(h)["Channel"] for _, h in ami.sent] == ["PJSIP/duty1"]
    service.stopService()


def test_an_entry_that_is_no_order_number_leaves_and_the_others_still_ring() -> None:
    class Picky(Orders):
        def order(self, ticket: str) -> dict[str, str]:
            if not ticket.isdigit():
                raise Malformed("ticket does not match", "ticket_malformed")
            return super().order(ticket)

    orders = Picky({"old-format-1": {"status": "received"}, T: {"status": "received"}})
    orders.due["old-format-1"] = NOW - 10  # the oldest: first in the list
    assert [r.ticket for r in claim_due(orders, CONFIG, NOW)] == [T]
    assert "old-format-1" not in orders.due


def test_redis_failing_midway_keeps_the_rings_already_won() -> None:
    class Failing(Orders):
        def write(self, change: Any) -> bool:
            if change.record.endswith("2"):
                raise Unavailable("Redis: reached 0 of 1 replicas")
            return super().write(change)

    orders = Failing({"2026120300011": {"status": "received"},
                      "2026120300012": {"status": "received"}})
    assert [r.ticket for r in claim_due(orders, CONFIG, NOW)] == ["2026120300011"]
    with pytest.raises(Unavailable):  # nothing won: the ringer says Redis is gone
        claim_due(orders, CONFIG, NOW)


def test_a_ring_another_gateway_claimed_first_is_not_rung_twice() -> None:
    orders = Orders({T: {"status": "received"}})
    orders.lose_to_another = True
    assert claim_due(orders, CONFIG, NOW) == []


def test_a_ring_asterisk_refuses_is_counted_and_rung_again_later() -> None:
    clock = Clock()
    clock.advance(NOW)
    orders = Orders({T: {"status": "received"}})
    ami = Ami(ConnectionError("AMI is not connected"))
    service = ringer(orders, ami, clock)
    service.startService()
    assert (service.rung, service.failed, orders.due[T]) == (0, 1, NOW + 330)
    orders.down = True  # Redis gone: the ringer says so and goes on
    clock.advance(330)
    orders.down, ami.fail = False, None
    clock.advance(CONFIG.poll)
    assert (service.rung, service.failed) == (1, 1)
    service.stopService()


# -- the scripts ----------------------------------------------------------------------------

def run(coroutine: Any) -> None:
    asyncio.run(coroutine)


async def at_once(call: Any, *args: Any) -> Any:
    return call(*args)


def scripts(orders: Orders, config: DutyConfig = CONFIG) -> dict[str, Any]:
    return make_duty_scripts(lambda: orders, lambda: config, at_once)


def channel(*args: str, name: str = "PJSIP/duty1-0000002a") -> ChannelDouble:
    return ChannelDouble(name, "u1", args, {})


@pytest.mark.parametrize(("category", "prompt"), [
    ("civil_disputes.domestic_violence", "cat_civil_disputes"),  # a police matter: near
    ("no_such_category", "cat_other"), ("", "cat_other")])
def test_a_police_matter_says_its_category_and_an_unknown_one_other(
        category: str, prompt: str) -> None:
    said = announcement("12a3", {"category": category}, CATALOGUE)
    assert said.split("&")[1:] == ["linkgw/zh/digit_1", "linkgw/zh/digit_2",
                                   "linkgw/zh/digit_3", "linkgw/zh/duty_category",
                                   f"linkgw/zh/{prompt}"]


def test_pressing_1_accepts_it_as_the_extension() -> None:
    orders = Orders({T: {"status": "received"}})
    session = channel(T, "1", "")
    run(scripts(orders)["duty_accept"](session))
    assert session.set == {"LINKGW_ANSWER": "OK|linkgw/zh/duty_accepted"}
    assert orders.accepted == [(T, Actor("duty", "duty1"))]
    assert orders.orders[T]["accepted_note"] == "值班电话 duty1"


def test_another_key_or_a_wrong_pin_accepts_nothing_and_a_good_pin_names_the_officer(
        ) -> None:
    orders = Orders({T: {"status": "received"}})
    by_pin = DutyConfig(numbers=("PJSIP/duty1",), identity="pin", pins="J4201:4821")
    for args, answer in (((T, "2", ""), "KEY"), ((T, "1", "1234"),
                                                "PIN|linkgw/zh/duty_wrong_pin")):
        session = channel(*args)
        run(scripts(orders, by_pin)["duty_accept"](session))
        assert session.set == {"LINKGW_ANSWER": answer}
    assert orders.accepted == []
    session = channel(T, "1", "4821")
    run(scripts(orders, by_pin)["duty_accept"](session))
    assert orders.accepted == [(T, Actor("duty", "J4201"))]


def test_a_second_officer_too_late_hears_it_is_taken() -> None:
    """The desk answers a second accept with the record as it stands: the officer whose
    press did not make it is told it is taken, the one who did hears it again."""
    orders = Orders({T: {"status": "received"}})
    run(scripts(orders)["duty_accept"](channel(T, "1", "")))
    late = channel(T, "1", "", name="PJSIP/duty2-0000002b")
    run(scripts(orders)["duty_accept"](late))
    assert late.set == {"LINKGW_ANSWER": "DONE|linkgw/zh/duty_already"}
    again = channel(T, "1", "")
    run(scripts(orders)["duty_accept"](again))  # duty1's own press, retried
    assert again.set == {"LINKGW_ANSWER": "OK|linkgw/zh/duty_accepted"}
    orders.orders[T]["status"] = "returned"
    gone = channel(T, "1", "", name="PJSIP/duty2-0000002c")
    run(scripts(orders)["duty_accept"](gone))
    assert gone.set == {"LINKGW_ANSWER": "DONE|linkgw/zh/duty_already"}


def test_redis_down_at_the_press_accepts_nothing_and_says_so() -> None:
    orders = Orders({T: {"status": "received"}})

    def down(*_: Any) -> dict[str, str]:
        raise Unavailable("Redis: gone")

    orders.act = down  # type: ignore[method-assign,assignment]
    session = channel(T, "1", "")
    run(scripts(orders)["duty_accept"](session))
    assert session.set == {"LINKGW_ANSWER": "ERROR"}


def test_a_hostile_channel_name_is_no_operator() -> None:
    """The channel name comes from Asterisk; one that is not an endpoint's is 'duty'."""
    orders = Orders({T: {"status": "received"}})
    run(scripts(orders)["duty_accept"](channel(T, "1", "", name="Local/x\r\n@y-1;2")))
    assert orders.accepted == [(T, Actor("duty", "duty"))]
