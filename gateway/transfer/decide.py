"""What the key decides, as pure functions of what Asterisk holds and the config.

Every gateway process (FastAGI, process mode, a restarted or a second gateway) reads the
same channel variables and the same config, so every one of them decides the same way.
"""

from __future__ import annotations

from gateway.catalogue import Catalogue, Category, Item
from gateway.config import TransferConfig
from gateway.schema import iso
from gateway.transfer.events import RefusedAtKey
from gateway.transfer.model import Bridge, KeyPress, Refused, direction
from gateway.transfer.phase import Mode, Phase
from gateway.transfer.table import transition


def refusal_at_key(press: KeyPress, config: TransferConfig, ami_up: bool) -> Refused | None:
    """Why this key press opens no bridge, or None. Police first: an emergency flag on
    the citizen's channel refuses every transfer of that call."""
    if press.emergency:
        return Refused("emergency", "the call-taker flagged an emergency",
                       config.refusal_prompt)
    if press.active:
        return Refused("already", f"transfer {press.active} already running",
                       bridge_id=press.active)
    if not ami_up:
        return Refused("ami_down", "the gateway has no AMI connection to Asterisk")
    return unknown_line(press, config)


def code_digits(typed: str) -> str:
    """The item code in what the key-presser typed: the leading digits. A ``*`` ends it,
    so the key pressed again (``*1``) is no code rather than a wrong one."""
    out = ""
    for char in typed:
        if not char.isdigit() or not char.isascii():
            break
        out += char
    return out


def classify(typed: str, catalogue: Catalogue, side: str, config: TransferConfig,
             to: str = "") -> tuple[dict[str, str], Refused | None]:
    """The record fields of a typed code, and its refusal if it has one. ``to``: the
    line the bridge is handed to ("": the other line); an item's own route (the liaison
    seat, a further line) applies to what 110 hands to 12345 only."""
    code = code_digits(typed) or config.default_code
    fields = {"code": code, "code_given": "yes" if code_digits(typed) else "no"}
    if not code:
        if config.require_code == "refuse":
            return fields, Refused("code_required", "no item code was typed after the key",
                                   config.refusal_prompt)
        if config.require_code == "flag":
            fields["unclassified"] = "yes"
        return fields, None
    what: Category | Item | None = catalogue.lookup(code)
    if isinstance(what, Item):
        fields |= {"category": what.category, "item": what.id, "item_name": what.name_zh}
        if side == "110" and what.never_transfer:
            return fields, Refused("never_transfer", f"{what.id} stays with 110",
                                   config.refusal_prompt)
        if side == "110" and to in ("", "12345"):
            fields |= _route(what, config)
        return fields, None
    if isinstance(what, Category):
        return fields | {"category": what.id}, None
    return fields, Refused("unknown_code", f"no category or item has code {code}",
                           config.refusal_prompt)


def _route(item: Item, config: TransferConfig) -> dict[str, str]:
    """Where an item goes instead of 12345's queue (categories.yaml ``target``): the
    liaison seat, or a further line (the bridge's direction becomes that line's)."""
    if item.target == "liaison" and config.liaison:
        return {"route": "liaison", "route_target": config.liaison}
    line = config.line(item.target) if item.target else None
    if line is not None:
        return {"route": line.name, "route_target": line.target,
                "direction": direction("110", line.name)}
    return {}


def unknown_line(press: KeyPress, config: TransferConfig) -> Refused | None:
    """A further line's key names a line the config has (a dialplan rendered from an
    older config may still have a key whose line is gone), and only at 110."""
    if not press.line:
        return None
    if press.side != "110" or config.line(press.line) is None:
        return Refused("unknown_line", f"no line {press.line[:16]!r} to hand over to "
                       f"from {press.side}", config.refusal_prompt)
    return None


def plan(side: str, config: TransferConfig, line: str = "") -> tuple[str, ...]:
    """The dial strings of the attempts, in order, for a key pressed on ``side``
    (``line``: a further line's own key)."""
    to = config.destination(side, line)
    return (to.target,) * config.attempts + ((to.alternate,) if to.alternate else ())


def key_of(press: KeyPress, config: TransferConfig) -> str:
    """The key that was pressed (the code typed after it follows it)."""
    if press.mode is Mode.CONSULT:
        return config.consult_key
    return config.destination(press.side, press.line).key


def new_bridge(press: KeyPress, bridge_id: str, now: float, config: TransferConfig,
               asterisk: str, owner: str) -> Bridge:
    """The bridge a key press opens, with every field of its first record."""
    line = press.line if config.line(press.line) is not None else ""  # else refused
    phase = Phase(mode=press.mode, plan=plan(press.side, config, line),
                  retry_delay=config.retry_delay)
    bridge = Bridge(bridge_id, press.citizen, press.seat, press.side, phase)
    c, s = press.citizen, press.seat
    bridge.fields = {
        "bridge_id": bridge.id, "asterisk": asterisk, "owner": owner,
        "direction": direction(press.side, line), "mode": press.mode.value,
        "state": phase.state.value, "conference": bridge.conference,
        "requested_at": iso(now),
        "citizen_number": c.number, "citizen_name": c.name, "citizen_channel": c.channel,
        "citizen_uniqueid": c.uniqueid, "citizen_linkedid": c.linkedid,
        "seat": s.endpoint, "seat_channel": s.channel, "seat_uniqueid": s.uniqueid,
        "seat_linkedid": s.linkedid, "target": phase.plan[0],
        "plan": ",".join(phase.plan), "attempt": "1",
        "recording": f"{config.recording_dir}/linkgw-{bridge.id}.wav",
    }
    if press.parent:
        bridge.fields["parent_bridge"] = press.parent
    if press.side == "12345":
        bridge.fields["response_due_at"] = iso(now + config.response_deadline)
    return bridge


def refused(bridge: Bridge, refusal: Refused, now: float) -> Bridge:
    """The same bridge as a refusal: over as it opens (the table's edge), on record for
    the figures."""
    bridge.take(transition(bridge.phase, RefusedAtKey(now, refusal.reason, refusal.detail)))
    bridge.fields.pop("response_due_at", None)  # nothing was handed over
    return bridge
