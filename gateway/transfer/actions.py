"""The AMI actions of the transfer feature, as headers (pure): the Twisted service and
the process-mode AGI program send the same ones."""

from __future__ import annotations

from gateway.config import TransferConfig
from gateway.transfer import invite
from gateway.transfer.model import Bridge
from gateway.transfer.phase import Mode, Role

JOIN_CONTEXT = {Mode.TRANSFER: "linkgw-join-{role}", Mode.CONSULT: "linkgw-consult-{role}"}
JOURNAL = "linkgw"  # AstDB family of the dialplan's journal: linkgw/<bridge id>/<fact>
LATE = "linkgw-late"  # calls no gateway answered: linkgw-late/<citizen uniqueid>/<what>
#: The keys armed on the other line's leg, so that it can hand the citizen on in turn.
FEATURES = {"110": "linkgw_onekey#linkgw_consult",  # a 12345 agent (110 -> 12345)
            "12345": "linkgw_onekey#linkgw_consult#linkgw_emergency"}  # a 110 seat


def _escaped(value: str) -> str:
    """An AMI ``Variable`` value: Asterisk splits it on commas unless escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def originate_headers(bridge: Bridge, attempt: int, config: TransferConfig
                      ) -> list[tuple[str, str]]:
    """The Originate of the other line's leg of ``attempt``: into the conference, with
    the uniqueid ``<bridge id>-a<attempt>``, armed with the keys (so that it can hand the
    citizen on in turn), its hangup journalled; on a PJSIP leg the INVITE carries the
    110 context (:mod:`gateway.transfer.invite`)."""
    leg = bridge.agent_id(attempt)
    dial = bridge.phase.plan[attempt]
    sip = [("Variable", f"PJSIP_HEADER(add,{name})={_escaped(value)}")
           for name, value in invite.headers(bridge, config)] \
        if dial.startswith("PJSIP/") else []
    other_side = bridge.handed_to
    # a further line's agent (122) gets no key: the keys hand a citizen between 110 and
    # 12345, and no line hands back to 110 over this gateway yet
    features = FEATURES.get(bridge.side, "") if other_side in ("110", "12345") else ""
    gone = _escaped(f"linkgw-gone,s,1({bridge.id},agent_a{attempt})")
    return [
        ("Channel", dial),
        ("Context", JOIN_CONTEXT[bridge.mode].format(role=Role.AGENT)),
        ("Exten", bridge.id), ("Priority", "1"),
        ("Timeout", str(int(config.ring_timeout * 1000))),
        ("CallerID", invite.caller_id(bridge, config)),
        ("ChannelId", leg),
        ("Variable", f"LINKGW_BRIDGE={bridge.id}"),
        ("Variable", f"LINKGW_SIDE={other_side}"),
        ("Variable", f"DYNAMIC_FEATURES={features}"),
        ("Variable", f"CHANNEL(hangup_handler_push)={gone}"),
        *sip,
        ("Async", "true"),
    ]
