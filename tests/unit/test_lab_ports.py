"""The labs' port slots: one lab a slot, below the ephemeral range, held by a lock."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest

from gateway.lab.ports import (
    OWN_PORTS,
    RTP_PORTS,
    SLOT_BASE,
    SLOT_COUNT,
    SLOT_SIZE,
    PortSlot,
    claim_slot,
    port_free,
)
from gateway.lab.process import LabError


def ANY(slot: PortSlot) -> bool:
    return True


def test_slots_lie_below_the_kernels_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert SLOT_BASE + SLOT_COUNT * SLOT_SIZE <= low
    assert 2 * RTP_PORTS + OWN_PORTS == SLOT_SIZE


def test_a_held_slot_is_never_claimed_twice_and_is_free_again_once_released(
        tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    first = claim_slot(locks, random.Random(7), ANY)
    second = claim_slot(locks, random.Random(7), ANY)  # the same first pick: it moves on
    assert second.index == (first.index + 1) % SLOT_COUNT
    first.release()
    again = claim_slot(locks, random.Random(7), ANY)
    assert again.index == first.index
    again.release()
    second.release()


def test_ports_are_handed_out_once_in_the_slots_own_range(tmp_path: Path) -> None:
    slot = claim_slot(tmp_path / "locks", random.Random(1), ANY)
    try:
        assert (slot.rtp_110, slot.rtp_12345) == (slot.base, slot.base + RTP_PORTS)
        sip, media = slot.take(), slot.take(4)
        assert (sip, media, slot.take()) == (slot.base + 400, slot.base + 401,
                                             slot.base + 405)
        slot.take(OWN_PORTS - 7)
        assert slot.take() == slot.base + SLOT_SIZE - 1
        with pytest.raises(LabError, match="fewer than 1 port"):
            slot.take()
    finally:
        slot.release()


def test_a_slot_whose_ports_something_holds_is_passed_over(tmp_path: Path) -> None:
    asked: list[int] = []

    def usable(slot: PortSlot) -> bool:
        asked.append(slot.index)
        return len(asked) > 1

    slot = claim_slot(tmp_path / "locks", random.Random(3), usable)
    try:
        assert asked == [random.Random(3).randrange(SLOT_COUNT), slot.index]
        assert slot.index == (asked[0] + 1) % SLOT_COUNT
        assert claim_slot(tmp_path / "locks", random.Random(3), ANY).index == asked[0]
    finally:
        slot.release()


def test_a_port_held_by_a_listener_or_a_udp_socket_is_not_free(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        bound.bind(("127.0.0.1", 0))
        assert not port_free(listener.getsockname()[1])
        assert not port_free(bound.getsockname()[1])


def test_when_every_slot_is_held_the_error_says_so(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    held = [claim_slot(locks, usable=ANY) for _ in range(SLOT_COUNT)]
    try:
        with pytest.raises(LabError, match=f"all {SLOT_COUNT} lab port slots"):
            claim_slot(locks, usable=ANY)
    finally:
        for slot in held:
            slot.release()


def test_a_lock_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o777)
    os.chmod(locks, 0o777)
    with pytest.raises(LabError, match="only it can write"):
        claim_slot(locks)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(LabError, match="only it can write"):
        claim_slot(link)
