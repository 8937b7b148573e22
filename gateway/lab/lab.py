"""One lab: Redis, Asterisk (chroot), the gateway and SIPp phones, on loopback ports of
its own (:class:`gateway.lab.ports.PortSlot`).

    with Lab(workdir) as lab:
        lab.phone("12345").start(...)

Stops everything it started, in reverse order, by pid, also when the body raises.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from types import TracebackType

import redis

from gateway.bridge.acl import USERS as ACL_USERS
from gateway.bridge.acl import render as render_acl
from gateway.config import Config, TransferConfig, load_config
from gateway.lab.ami_probe import AmiProbe
from gateway.lab.asterisk import PROBE_USER, Asterisk, AsteriskPorts, Phone
from gateway.lab.peer import (
    AGENTS,
    LIAISON,
    LIAISON_NUMBER,
    PEER_HOST,
    QUEUE_NUMBER,
    RESIDENT,
    TRAFFIC,
    TRAFFIC_NUMBER,
    PeerAsterisk,
    trunk_to_12345,
)
from gateway.lab.ports import claim_slot
from gateway.lab.process import LabError
from gateway.lab.provision import ensure_asterisk_root
from gateway.lab.proxy import Relay
from gateway.lab.sentinel import SERVICE as SENTINEL_SERVICE
from gateway.lab.sentinel import RedisSentinels
from gateway.lab.services import GatewayProcess, PushProcess, ReceiverProcess, RedisServer
from gateway.lab.sipp import SIPP_MEDIA_PORTS, SippPhone
from gateway.lab.tls import make_ca_and_server
from gateway.process.keeper_wire import paths as keeper_paths

REPO = Path(__file__).resolve().parents[2]
#: The lab's phones: name → the context its own calls land in.
PHONES = {"citizen": "lab-citizen", "seat1": "lab-seat", "seat2": "lab-seat",
          "12345": "lab-12345", "liaison": "lab-12345",
          "duty1": "lab-seat", "duty2": "lab-seat",  # 110's 24-hour duty phones
          "122": "lab-12345"}  # a further line: the traffic police (transfer.lines)
#: The two-PBX lab's 12345 PBX: its phones (agents in a queue, a police liaison seat).
PEER_PHONES = {**{a: "lab-12345" for a in AGENTS}, LIAISON: "lab-12345",
               TRAFFIC: "lab-12345",
               RESIDENT: "lab-12345-citizen"}
TRUNK = "trunk-12345"  # 110's endpoint for the trunk to 12345
TOPOLOGIES = ("one-pbx", "two-pbx")
ONEKEY = "*1"
CONSULT_KEY = "*2"
EMERGENCY_KEY = "*0"
DECLINE_KEY = "*9"  # consult: the other line's agent declines, then the reason's code
TRAFFIC_KEY = "*3"  # the lab's further line, 122 (traffic police)
RING_TIMEOUT = 4.0
CODE_TIMEOUT = 1.5
LEASE_TTL = 2.0
SWEEP_INTERVAL = 0.5
#: The duty phone in the lab: each number rung twice, 6 s apart (an answered ring waits
#: as long: the officer listens, then presses 1), 2.5 s each.
DUTY_EVERY, DUTY_RING = 6.0, 2.5


#: An item the lab's catalogue hands to its further line, 122 (an abandoned car on the
#: road is the traffic police's in many cities): the shipped catalogue, that one changed.
TRAFFIC_ITEM = "103"


def lab_categories() -> str:
    shipped = (REPO / "config/categories.yaml").read_text(encoding="utf-8")
    item = f'code: "{TRAFFIC_ITEM}", name_zh: 僵尸车长期占道, name_en: Abandoned car on the road}}'
    if item not in shipped:
        raise LabError(f"config/categories.yaml: item {TRAFFIC_ITEM} is not as the lab expects")
    return shipped.replace(item, item[:-1] + ', target: "122"}')


class Lab:
    """``agi="fastagi"``: the gateway runs as a service and Asterisk reaches it over
    FastAGI. ``agi="process"``: no gateway service; Asterisk runs the process-mode AGI
    program inside its root (:mod:`gateway.process.agi`). ``gateways=2``: two gateway
    services, the dialplan trying the second when the first does not answer.
    ``topology="two-pbx"``: 12345 is a second Asterisk (:mod:`gateway.lab.peer`) behind
    a SIP trunk, its agents in a queue; 110 dials 12345 over the trunk; the 12345
    system is told by push, over HTTPS, by the lab's receiver (:mod:`gateway.lab.receiver`,
    its certificate from a CA made for the lab), or by ``push_url`` (an integrator's own
    receiver, secret from ``LINKGW_PUSH_SECRET``)."""

    def __init__(self, workdir: Path, name: str | None = None, agi: str = "fastagi",
                 gateways: int = 1, sentinel: bool = False, topology: str = "one-pbx",
                 push_url: str = "") -> None:
        if topology not in TOPOLOGIES:
            raise LabError(f"unknown topology {topology!r} (known: {', '.join(TOPOLOGIES)})")
        self.workdir = workdir
        self.agi = agi
        self.topology = topology
        self.name = name or secrets.token_hex(4)
        self.log_dir = workdir / "logs"
        self.slot = claim_slot()  # released by stop(), or here when making the lab fails
        try:
            self._make(workdir, agi, gateways, sentinel, push_url)
        except BaseException:
            self.slot.release()
            raise

    def _make(self, workdir: Path, agi: str, gateways: int, sentinel: bool,
              push_url: str) -> None:
        phones = [*PHONES, *(PEER_PHONES if self.two_pbx else ())]
        take = self.slot.take
        self.sip_port, self.ami_port, self.fastagi_port, self.redis_port = [take()
                                                                            for _ in range(4)]
        self.http_port, self.ami_relay_port, self.fastagi2_port, self.http2_port = [
            take() for _ in range(4)]
        self.peer_sip_port, self.peer_ami_port, self.receiver_port = [take() for _ in range(3)]
        # a SIPp phone binds its media port and the three after it (RTCP, video, RTCP)
        self.phone_ports = {n: (take(), take(SIPP_MEDIA_PORTS)) for n in phones}
        self.rtp_start, self.peer_rtp_start = self.slot.rtp_110, self.slot.rtp_12345
        self.ami_user = "linkgw"
        self._ami_secret = secrets.token_urlsafe(16)  # made per lab, never written to git
        self._probe_secret = secrets.token_urlsafe(16)
        self.api_token = secrets.token_urlsafe(16)
        self.role_tokens = {"12345": secrets.token_urlsafe(16),
                            "supervisor": secrets.token_urlsafe(16),
                            "liaison": secrets.token_urlsafe(16),
                            "122": secrets.token_urlsafe(16)}  # a further line's system
        # Redis runs with the shipped users (config/redis.acl); the gateway logs in as
        # linkgw-gateway; the tests' own client is Redis's `default` user (the admin)
        self.redis_passwords = {user: secrets.token_urlsafe(16) for user in ACL_USERS}
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.push_url = push_url
        self.push_secret = os.environ.get("LINKGW_PUSH_SECRET", "") if push_url else \
            secrets.token_urlsafe(24)
        self.tls = make_ca_and_server(workdir / "tls", "lab") if self.two_pbx and \
            not push_url else None
        self.receiver = ReceiverProcess(
            self.receiver_port, workdir / "received.jsonl", self.push_secret, self.log_dir,
            self.tls.cert, self.tls.key) if self.tls is not None else None
        self.pusher: PushProcess | None = None  # process mode: the push runs alone
        self.duty: PushProcess | None = None  # process mode: the duty ringer runs alone
        self.sentinels = RedisSentinels(workdir / "sentinel", self.log_dir) if sentinel \
            else None
        self.config_path = workdir / "gateway.yaml"
        self.config = self._write_config(self.config_path, self.fastagi_port, self.http_port,
                                         "lab-gw1", gateways)
        self.redis = RedisServer(self.redis_port, workdir / "redis", self.log_dir)
        self.asterisk: Asterisk | None = None
        env = self.secrets_env
        self.gateways = [GatewayProcess(self.config_path, env, self.log_dir)]
        if gateways > 1:
            second = workdir / "gateway2.yaml"
            self._write_config(second, self.fastagi2_port, self.http2_port, "lab-gw2",
                               gateways)
            self.gateways.append(GatewayProcess(second, env, self.log_dir, "gateway2.log"))
        self.probe: AmiProbe | None = None
        self.peer: PeerAsterisk | None = None  # 12345's PBX, in the two-PBX lab
        self.peer_probe: AmiProbe | None = None
        self.ami_relay: Relay | None = None  # the gateway reaches AMI through it
        self._phones: list[SippPhone] = []
        self._phone_count = 0

    @property
    def two_pbx(self) -> bool:
        return self.topology == "two-pbx"

    @property
    def pushing(self) -> bool:
        """The 12345 system is told by push (the two-PBX lab, or a given receiver)."""
        return self.receiver is not None or bool(self.push_url)

    def _push_config(self) -> str:
        url = self.receiver.url if self.receiver is not None else self.push_url
        ca = f"  ca_file: {json.dumps(str(self.tls.ca))}\n" if self.tls is not None else ""
        return (f"push:\n  url: {json.dumps(url)}\n  secret_env: LINKGW_PUSH_SECRET\n{ca}"
                "  retry_initial: 0.2\n  retry_max: 2.0\n  poll: 0.1\n  timeout: 5.0\n")

    @property
    def secrets_env(self) -> dict[str, str]:
        """What the gateway and the linkgw CLI find in their environment."""
        return {"LINKGW_AMI_SECRET": self._ami_secret, "LINKGW_API_TOKEN": self.api_token,
                "LINKGW_REDIS_PASSWORD": self.redis_passwords["linkgw-gateway"],
                "LINKGW_REDIS_PASSWORD_MAINTENANCE": self.redis_passwords["linkgw-maintenance"],
                **({"LINKGW_PUSH_SECRET": self.push_secret} if self.pushing else {}),
                "LINKGW_API_TOKEN_12345": self.role_tokens["12345"],
                "LINKGW_API_TOKEN_SUPERVISOR": self.role_tokens["supervisor"],
                "LINKGW_API_TOKEN_LIAISON": self.role_tokens["liaison"],
                "LINKGW_API_TOKEN_122": self.role_tokens["122"]}

    def _write_acl(self) -> list[str]:
        """The lab's Redis users file; redis-server arguments that load it."""
        path = self.workdir / "redis-users.acl"
        path.write_text(render_acl((REPO / "config/redis.acl").read_text(encoding="utf-8"),
                                   self.config.redis.prefix, self.redis_passwords),
                        encoding="utf-8")
        path.chmod(0o600)
        return ["--aclfile", str(path)]

    def redis_as(self, user: str) -> redis.Redis:
        """A client logged in as one of the shipped users (on the master)."""
        port = self.sentinels.master().port if self.sentinels is not None else self.redis.port
        return redis.Redis(host="127.0.0.1", port=port, username=user,
                           password=self.redis_passwords[user], decode_responses=True)

    @property
    def gateway(self) -> GatewayProcess:
        return self.gateways[0]

    def _gateway_config_text(self, spool_dir: str, categories: str, http_port: int,
                             fastagi_port: int, instance: str, backup: bool,
                             push: bool = True) -> str:
        """The lab's gateway config; ``http_port`` 0 for process mode (no API)."""
        api = (f"http:\n  listen: \"tcp:{http_port}:interface=127.0.0.1\"\n"
               "  token_env: LINKGW_API_TOKEN\n"
               "  token_12345_env: LINKGW_API_TOKEN_12345\n"
               "  token_supervisor_env: LINKGW_API_TOKEN_SUPERVISOR\n"
               "  token_liaison_env: LINKGW_API_TOKEN_LIAISON\n"
               ) if http_port else "http:\n  listen: \"\"\n"
        return (
            "fastagi:\n"
            f"  listen: \"tcp:{fastagi_port}:interface=127.0.0.1\"\n"
            "  allow: [\"127.0.0.1\"]\n"
            "ami:\n"
            f"  endpoint: \"tcp:host=127.0.0.1:port={self.ami_relay_port}\"\n"
            f"  username: {self.ami_user}\n"
            "  secret_env: LINKGW_AMI_SECRET\n"
            "redis:\n"
            f"  url: \"redis://127.0.0.1:{self.redis_port}/0\"\n"
            "  username: linkgw-gateway\n"
            "  password_env: LINKGW_REDIS_PASSWORD\n"
            + (f"  sentinels: {json.dumps(self.sentinels.addresses)}\n"
               f"  service: {SENTINEL_SERVICE}\n  min_replicas: 1\n"
               if self.sentinels else "") +
            "  retry_delay: 0.5\n"
            f"  spool_dir: {json.dumps(spool_dir)}\n"
            "cluster:\n"
            f"  instance: {instance}\n"
            f"  lease_ttl: {LEASE_TTL}\n"
            f"  sweep_interval: {SWEEP_INTERVAL}\n"
            f"{api}"
            "tickets:\n"
            "  pattern: \"^\\\\d{8,20}$\"\n"
            "transfer:\n"
            + (f"  target: \"PJSIP/{QUEUE_NUMBER}@{TRUNK}\"\n"
               f"  alternate: \"PJSIP/{LIAISON_NUMBER}@{TRUNK}\"\n"
               f"  liaison: \"PJSIP/{LIAISON_NUMBER}@{TRUNK}\"\n"
               f"  centre_id: \"110-lab\"\n"
               f"  call_info_url: \"https://110-gateway.lab/bridges/{{bridge_id}}\"\n"
               if self.two_pbx else
               "  target: \"PJSIP/12345\"\n"
               "  alternate: \"PJSIP/liaison\"\n"
               "  liaison: \"PJSIP/liaison\"\n") +
            "  reverse_target: \"PJSIP/seat2\"\n"
            "  attempts: 2\n"
            "  retry_delay: 0.5\n"
            f"  ring_timeout: {RING_TIMEOUT}\n"
            f"  onekey: {json.dumps(ONEKEY)}\n"
            f"  consult_key: {json.dumps(CONSULT_KEY)}\n"
            f"  emergency_key: {json.dumps(EMERGENCY_KEY)}\n"
            f"  decline_key: {json.dumps(DECLINE_KEY)}\n"
            "  lines:\n"
            "    - name: \"122\"\n"
            "      label: 交警\n"
            f"      key: {json.dumps(TRAFFIC_KEY)}\n"
            + (f"      target: \"PJSIP/{TRAFFIC_NUMBER}@{TRUNK}\"\n" if self.two_pbx else
               "      target: \"PJSIP/122\"\n") +
            "      notice_prompt: linkgw/zh/notice_122\n"
            "      display_prefix: 110转\n"
            "      feedback_hours: 8\n"
            + ("      token_env: LINKGW_API_TOKEN_122\n" if http_port else "") +
            "  code_digits: 3\n"
            f"  code_timeout: {CODE_TIMEOUT}\n"
            f"  categories: {json.dumps(categories)}\n"
            f"  agi_url: \"{self.agi_url}\"\n"
            + (f"  agi_backup_url: \"agi://127.0.0.1:{self.fastagi2_port}\"\n"
               if backup else "") +
            "  seats: \"PJSIP/seat1&PJSIP/seat2\"\n"
            "  agents: \"PJSIP/12345\"\n"
            f"  recording_dir: {self.recording_dir}\n"
            "duty:\n  numbers: [\"PJSIP/duty1\", \"PJSIP/duty2\"]\n"
            f"  rings_per_number: 2\n  every: {DUTY_EVERY}\n  ring_timeout: {DUTY_RING}\n"
            "  max_rings: 4\n  poll: 0.3\n"
            "log:\n  format: json\n  level: info\n"
            "retention:\n  redis_username: linkgw-maintenance\n"
            "  redis_password_env: LINKGW_REDIS_PASSWORD_MAINTENANCE\n"
            + (self._push_config() if push and self.pushing else "")
        )

    def _write_config(self, path: Path, fastagi_port: int, http_port: int, instance: str,
                      gateways: int) -> Config:
        categories = self.workdir / "categories.yaml"
        categories.write_text(lab_categories(), encoding="utf-8")
        text = self._gateway_config_text(str(self.workdir / "spool"), str(categories), http_port,
                                         fastagi_port, instance, gateways > 1)
        path.write_text(text, encoding="utf-8")
        return load_config(text, str(path), self.secrets_env)

    @property
    def inside(self) -> str:
        """This lab's folder as Asterisk sees it (inside its root)."""
        return f"/srv/linkgw-lab/{self.name}"

    @property
    def agi_url(self) -> str:
        if self.agi == "process":
            return f"{self.inside}/agi"  # a folder of programs: incoming, onekey, …
        return f"agi://127.0.0.1:{self.fastagi_port}"

    def _process_mode_files(self, base: Path) -> None:
        """The process-mode AGI programs inside Asterisk's root: this package on a
        PYTHONPATH (its other needs come from the root's Debian packages), the config
        with paths as seen inside, and one small wrapper per script."""
        py = base / "py"
        shutil.copytree(REPO / "gateway", py / "gateway",
                        ignore=shutil.ignore_patterns("__pycache__"))
        gw = base / "gw"
        gw.mkdir()
        (gw / "categories.yaml").write_text(lab_categories(), encoding="utf-8")
        (gw / "gateway.yaml").write_text(self._gateway_config_text(
            f"{self.inside}/gw/spool", "categories.yaml", 0, self.fastagi_port, "lab-proc",
            False, push=False), encoding="utf-8")
        secrets_file = gw / "secrets.env"
        secrets_file.write_text(
            f"export LINKGW_AMI_SECRET='{self._ami_secret}'\n"
            f"export LINKGW_REDIS_PASSWORD='{self.redis_passwords['linkgw-gateway']}'\n")
        secrets_file.chmod(0o600)
        (base / "agi").mkdir()
        for script in ("incoming", "onekey", "code", "emergency", "handed", "taken",
                       "handed_end", "duty_accept"):
            wrapper = base / "agi" / script
            wrapper.write_text(
                "#!/bin/sh\n"
                f". {self.inside}/gw/secrets.env\n"
                # a loaded machine, when a test asks for one (slow_program_start)
                f"[ -r {self.inside}/gw/start-delay ] && "
                f"sleep \"$(cat {self.inside}/gw/start-delay)\"\n"
                f"export LINKGW_CONFIG={self.inside}/gw/gateway.yaml\n"
                f"export PYTHONPATH={self.inside}/py\n"
                f"exec python3 -m gateway.process.agi {script} \"$@\"\n")
            wrapper.chmod(0o755)

    def edit_config(self, old: str, new: str) -> None:
        """Change the config the AGI side reads: the gateway's file, or in process mode
        the one the programs read at each call. A gateway service sees it after its
        reload (``GatewayProcess.reload``)."""
        path = self.config_path if self.agi == "fastagi" else \
            self.asterisk_base() / "gw/gateway.yaml"
        text = path.read_text(encoding="utf-8")
        if old not in text:
            raise LabError(f"{path}: no {old!r} to change")
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def asterisk_base(self) -> Path:
        assert self.asterisk is not None
        return self.asterisk.base

    def slow_program_start(self, seconds: float) -> None:
        """Process mode: every AGI program starts ``seconds`` late, as on a loaded
        machine (0: on time again)."""
        assert self.asterisk is not None and self.agi == "process"
        delay = self.asterisk.base / "gw/start-delay"
        if seconds > 0:
            delay.write_text(f"{seconds:.3f}\n", encoding="ascii")
        else:
            delay.unlink(missing_ok=True)

    def keeper_listening(self) -> bool:
        """Process mode: a digit keeper answers on its socket in the programs' spool."""
        assert self.asterisk is not None and self.agi == "process"
        _, path = keeper_paths(str(self.asterisk.base / "gw/spool"))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    @property
    def process_log(self) -> Path:
        """The process-mode followers' log (inside Asterisk's root)."""
        assert self.asterisk is not None
        return self.asterisk.base / "gw/linkgw-agi.log"

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` of every log the lab keeps (the services', Asterisk's while
        it runs, the process-mode programs') and the errors of this test's SIPp phones,
        for a failed test's report."""
        live = [self.asterisk.base / "log/messages.log", self.process_log] \
            if self.asterisk is not None and self.asterisk.base.exists() else []
        if self.peer is not None:
            live.append(self.peer.base / "log/messages.log")
        files = sorted(p for p in self.log_dir.rglob("*") if p.is_file()) if \
            self.log_dir.exists() else []
        parts = []
        for path in [*live, *files]:
            if path.exists():
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                parts.append(f"==> {path} <==\n" + "\n".join(tail))
        for phone in self._phones:  # what a phone that failed its scenario said
            if phone.proc is not None and phone.proc.popen.poll() not in (None, 0):
                parts.append(f"==> SIPp {phone.name}: its errors <==\n{phone.errors()}")
        return "\n\n".join(parts)

    @property
    def recording_dir(self) -> str:
        """Where Asterisk records conferences, as seen inside its root."""
        return f"/srv/linkgw-lab/{self.name}/recordings"

    @property
    def transfer(self) -> TransferConfig:
        return self.config.transfer

    def start(self) -> Lab:
        try:
            root = ensure_asterisk_root()
            if self.sentinels is not None:
                self.sentinels.extra_args = self._write_acl()
                self.sentinels.start()
            else:
                self.redis.extra_args = self._write_acl()
                self.redis.start()
            phones = [Phone(n, self.phone_ports[n][0], ctx) for n, ctx in PHONES.items()]
            if self.two_pbx:
                self._start_peer(root)
            trunk = trunk_to_12345(REPO / "dialplan", self.sip_port, self.peer_sip_port) \
                if self.two_pbx else ""
            self.asterisk = Asterisk(
                root, self.name, AsteriskPorts(self.sip_port, self.ami_port, self.rtp_start),
                phones, self.ami_user, self._ami_secret, self.config, REPO / "dialplan",
                self.log_dir, self._probe_secret, extra_pjsip=trunk)
            self.asterisk.start(self._process_mode_files if self.agi == "process" else None)
            self.ami_relay = Relay(self.ami_relay_port, self.ami_port)
            if self.receiver is not None:
                self.receiver.start()
            if self.agi == "fastagi":
                for gateway in self.gateways:
                    gateway.start()
            else:
                self.duty = PushProcess(self.config_path, self.secrets_env,
                                        self.log_dir / "duty.log", command="duty")
                self.duty.start()
                if self.pushing:
                    self.pusher = PushProcess(self.config_path, self.secrets_env,
                                              self.log_dir / "push.log")
                    self.pusher.start()
            self.probe = AmiProbe(self.ami_port, PROBE_USER, self._probe_secret)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_peer(self, root: Path) -> None:
        """12345's PBX, on its own address; its log folder is the lab's, names apart."""
        phones = [Phone(n, self.phone_ports[n][0], ctx) for n, ctx in PEER_PHONES.items()]
        self.peer = PeerAsterisk(
            root, f"{self.name}-12345",
            AsteriskPorts(self.peer_sip_port, self.peer_ami_port, self.peer_rtp_start,
                          PEER_HOST),
            phones, self.ami_user, secrets.token_urlsafe(16), self.config, REPO / "dialplan",
            self.log_dir / "12345", self._probe_secret)
        self.peer.port_110 = self.sip_port
        self.start_peer()

    def start_peer(self) -> None:
        """(Re)start 12345's PBX and its observer (after :meth:`stop_peer`)."""
        assert self.peer is not None
        self.peer.start()
        self.peer_probe = AmiProbe(self.peer_ami_port, PROBE_USER, self._probe_secret)

    def stop_peer(self) -> None:
        """Stop 12345's PBX: the trunk is down (its SIP port answers nothing)."""
        if self.peer_probe is not None:
            self.peer_probe.close()
            self.peer_probe = None
        if self.peer is not None:
            self.peer.stop()

    def phone(self, name: str) -> SippPhone:
        sip, media = self.phone_ports[name]
        self._phone_count += 1  # names stay unique in a lab, so no log is overwritten
        on_peer = name in PEER_PHONES and self.two_pbx
        phone = SippPhone(f"{name}-{self._phone_count}", sip, media,
                          self.peer_sip_port if on_peer else self.sip_port,
                          self.workdir / "sipp",
                          host=PEER_HOST if on_peer else "127.0.0.1",
                          remote_host=PEER_HOST if on_peer else "127.0.0.1")
        self._phones.append(phone)
        return phone

    def stop_phones(self) -> dict[str, int | None]:
        """Stop every phone still running (after a test); name → exit code."""
        codes = {p.name: p.proc.popen.poll() if p.proc else None for p in self._phones}
        for phone in self._phones:
            phone.stop()
        self._phones = []
        return codes

    def redis_client(self) -> redis.Redis:
        """The Redis the gateways write to (with Sentinel: the master of the moment)."""
        if self.sentinels is not None:
            return self.sentinels.client()
        return self.redis.client()

    def stop(self) -> None:
        try:
            self._stop_all()
        finally:
            self.slot.release()  # its ports are free for the next lab, whatever failed

    def _stop_all(self) -> None:
        self.stop_phones()
        if self.probe is not None:
            self.probe.close()
        for gateway in self.gateways:
            gateway.stop()
        for job in (self.pusher, self.duty):
            if job is not None:
                job.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self.ami_relay is not None:
            self.ami_relay.close()
        if self.asterisk is not None:
            self.asterisk.stop()
        self.stop_peer()
        self.redis.stop()
        if self.sentinels is not None:
            self.sentinels.stop()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
