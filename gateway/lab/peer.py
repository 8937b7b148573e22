"""The two-PBX lab's second Asterisk: 12345's own PBX, joined to 110's by a SIP trunk.

It runs from the same cached root as 110's Asterisk, with its own configuration folder,
ports and loopback address (127.0.0.2), so that each PBX knows the other by address
alone, as two centres do. Its configuration is what an Asterisk-based 12345 centre
would install from ``dialplan/peer/``: the trunk example, the reference dialplan and the
queue example, with the lab's addresses put in; plus the lab's agents and a liaison
seat, and a route for 12345's numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.lab.asterisk import Asterisk

PEER_HOST = "127.0.0.2"
#: The example addresses in the shipped trunk and queue files, and the transport name.
EXAMPLE_110 = "192.0.2.10"
EXAMPLE_12345 = "198.51.100.20"
EXAMPLE_TRANSPORT = "transport-udp"
#: What 110 dials over the trunk: 12345's queue and its police liaison seat.
QUEUE_NUMBER = "12345"
LIAISON_NUMBER = "1234501"
QUEUE = "hotline"
AGENTS = ("agent1", "agent2", "agent3")
LIAISON = "policedesk"  # 12345's police liaison seat (公安联勤专席)
RESIDENT = "resident"  # a citizen calling 12345 directly (the 12345 → 110 flow)
#: The lab's further line over the trunk: 122's number and a traffic officer's phone.
#: The lab has no third PBX: 12345's stands in for 122's (another PBX behind a trunk,
#: reading the same INVITE).
TRAFFIC_NUMBER = "122"
TRAFFIC = "traffic"
HANDOVER_CONTEXT = "linkgw-peer-to-110"  # where 12345's agents blind-transfer to 110
HANDOVER_PREFIX = "8110"  # + the work order's number


def with_lab_addresses(example: str, host_110: str, port_110: int, host_12345: str,
                       port_12345: int) -> str:
    """A shipped ``.example`` file with the lab's addresses and transport put in."""
    return (example.replace(f"{EXAMPLE_110}:5060", f"{host_110}:{port_110}")
            .replace(EXAMPLE_110, host_110)
            .replace(f"{EXAMPLE_12345}:5060", f"{host_12345}:{port_12345}")
            .replace(EXAMPLE_12345, host_12345)
            .replace(f"transport={EXAMPLE_TRANSPORT}", "transport=lab-udp"))


def trunk_to_12345(dialplan_src: Path, port_110: int, port_12345: int) -> str:
    """110's side of the trunk: the shipped example with the lab's addresses."""
    text = (dialplan_src / "linkgw_trunk.conf.example").read_text(encoding="utf-8")
    return "\n" + with_lab_addresses(text, "127.0.0.1", port_110, PEER_HOST, port_12345)


class PeerAsterisk(Asterisk):
    """12345's PBX. ``port_110`` is 110's SIP port (the trunk's far end)."""

    port_110: int = 0

    def install_dialplan(self, etc: Path) -> None:
        shutil.copyfile(self.dialplan_src / "peer/linkgw_peer_extensions.conf",
                        etc / "linkgw_peer_extensions.conf")

    def _example(self, name: str) -> str:
        text = (self.dialplan_src / "peer" / name).read_text(encoding="utf-8")
        return with_lab_addresses(text, "127.0.0.1", self.port_110, PEER_HOST,
                                  self.ports.sip)

    def files(self) -> dict[str, str]:
        files = super().files()
        files["queues.conf"] = self._example("linkgw_peer_queues.conf.example")
        files["extensions.conf"] = self._peer_extensions()
        files["features.conf"] = "[general]\n"
        files["confbridge.conf"] = ""
        return files

    def _pjsip_conf(self) -> str:
        return super()._pjsip_conf() + "\n" + self._example("linkgw_peer_pjsip.conf.example")

    def _peer_extensions(self) -> str:
        return (
            "[general]\nstatic=yes\nwriteprotect=yes\n\n"
            "#include linkgw_peer_extensions.conf\n\n"
            "; the lab's 12345 numbers, as a site defines them\n"
            "[linkgw-peer-route]\n"
            f"exten => {QUEUE_NUMBER},1,Gosub(linkgw-peer-queue,s,1({QUEUE}))\n"
            f"exten => {LIAISON_NUMBER},1,Gosub(linkgw-peer-dial,s,1(PJSIP/{LIAISON}))\n"
            f"exten => {TRAFFIC_NUMBER},1,Gosub(linkgw-peer-dial,s,1(PJSIP/{TRAFFIC}))\n"
            "; a resident calling 12345 (the lab's reverse flow starts here)\n"
            f"[lab-12345-citizen]\nexten => {QUEUE_NUMBER},1,Queue({QUEUE},r)\n"
            " same => n,Hangup()\n"
            "; the agents' own dialling goes nowhere in the lab\n"
            "[lab-12345]\nexten => _X.,1,Hangup(21)\n"
        )
