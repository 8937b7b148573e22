"""The lab's Asterisk: configuration written from ``dialplan/`` plus lab endpoints, run in
the cached sid root with chroot, on loopback ports of its own.

Each lab instance writes to ``<root>/srv/linkgw-lab/<name>/`` (etc, run, log, spool, lib),
so the cached root is never changed by a run and several labs can run side by side.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.dialplan import install
from gateway.install.manager import documented_classes
from gateway.lab.ports import RTP_PORTS
from gateway.lab.process import LabError, Proc, wait_until

NOLOAD = (
    "chan_iax2", "chan_dahdi", "chan_unistim", "chan_mgcp", "chan_skinny", "chan_motif",
    "chan_ooh323", "chan_mobile", "chan_console", "chan_alsa", "chan_websocket",
    "pbx_lua", "pbx_ael", "pbx_dundi", "pbx_realtime",
    "res_hep", "res_hep_pjsip", "res_hep_rtcp", "res_snmp", "res_xmpp", "res_calendar",
    "res_config_ldap", "res_config_pgsql", "res_config_mysql", "res_config_odbc",
    "res_odbc", "res_pgsql", "res_corosync", "res_statsd", "res_prometheus",
    "res_phoneprov", "res_pjsip_phoneprov_provider", "res_smdi", "res_fax_spandsp",
    "res_stun_monitor", "res_ari", "res_ari_applications", "res_ari_asterisk",
    "res_ari_bridges", "res_ari_channels", "res_ari_device_states", "res_ari_endpoints",
    "res_ari_events", "res_ari_playbacks", "res_ari_recordings", "res_ari_sounds",
    "res_ari_model", "res_stasis_recording", "res_http_websocket", "res_aeap",
    "res_speech_aeap", "cdr_pgsql", "cdr_odbc", "cdr_tds", "cdr_radius", "cel_pgsql",
    "cel_odbc", "cel_tds", "cel_radius", "cdr_beanstalkd", "cel_beanstalkd",
    "app_voicemail", "app_voicemail_imap", "app_voicemail_odbc", "app_minivm",
)


PROBE_USER = "lab-probe"


@dataclass(frozen=True)
class Phone:
    """A lab SIP endpoint served by a SIPp on ``port`` (static contact, no REGISTER)."""

    name: str
    port: int
    context: str


@dataclass(frozen=True)
class AsteriskPorts:
    sip: int
    ami: int
    rtp_start: int
    host: str = "127.0.0.1"  # the loopback address its SIP transport binds


def asterisk_cli(root: Path, inside: Path, command: str,
                 timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """One CLI command to the Asterisk whose config is ``<inside>/etc`` in ``root``."""
    return subprocess.run(["chroot", str(root), "asterisk", "-C",
                           f"{inside}/etc/asterisk.conf", "-rx", command],
                          capture_output=True, text=True, timeout=timeout, check=False)


def boot_chrooted(root: Path, inside: Path, base: Path, out: Path) -> Proc:
    """Start Asterisk in ``root`` with ``<inside>/etc/asterisk.conf`` and wait until it
    has fully booted (``base`` is ``inside`` as seen from outside)."""
    proc = Proc("asterisk", ["chroot", str(root), "asterisk", "-f", "-C",
                             f"{inside}/etc/asterisk.conf"], out)
    wait_until(lambda: (base / "run/asterisk.ctl").exists() or not proc.alive(),
               20, f"Asterisk's control socket ({inside})")
    if not proc.alive():
        raise LabError(f"Asterisk exited at start:\n{proc.tail()}")
    done = asterisk_cli(root, inside, "core waitfullybooted", timeout=60)
    if done.returncode != 0:
        raise LabError(f"Asterisk did not boot: {done.stderr}\n{proc.tail()}")
    return proc


class Asterisk:
    def __init__(self, root: Path, name: str, ports: AsteriskPorts, phones: list[Phone],
                 ami_user: str, ami_secret: str, config: Config, dialplan_src: Path,
                 log_dir: Path, probe_secret: str = "", extra_pjsip: str = "") -> None:
        self.root = root
        self.name = name
        self.ports = ports
        self.phones = phones
        self.ami_user = ami_user
        self._ami_secret = ami_secret
        self._probe_secret = probe_secret
        self.config = config
        self.dialplan_src = dialplan_src
        self.log_dir = log_dir
        self.extra_pjsip = extra_pjsip  # more endpoints (the trunk to another PBX)
        self.inside = Path("/srv/linkgw-lab") / name  # path seen from inside the chroot
        self.base = root / self.inside.relative_to("/")
        self.proc: Proc | None = None

    # -- configuration ---------------------------------------------------------------
    def write_config(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
        etc = self.base / "etc"
        for sub in ("etc", "run", "log", "spool", "lib", "db", "cache", "recordings"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.install_dialplan(etc)
        self.install_sounds()
        for file_name, text in self.files().items():
            (etc / file_name).write_text(text, encoding="utf-8")
        (etc / "manager.conf").chmod(0o600)

    def install_sounds(self) -> None:
        """Asterisk's data folder of this lab: the root's own (sounds, music, docs), by
        links, with linkgw's prompts (``dialplan/sounds/``) added to its sounds, as
        ``linkgw install`` adds them to a site's. The cached root stays unchanged."""
        shared = Path("/usr/share/asterisk")  # as seen inside the root
        data = self.base / "data"
        (data / "sounds").mkdir(parents=True)
        for entry in (self.root / shared.relative_to("/")).iterdir():
            if entry.name != "sounds":
                (data / entry.name).symlink_to(shared / entry.name)
        for entry in (self.root / shared.relative_to("/") / "sounds").iterdir():
            (data / "sounds" / entry.name).symlink_to(shared / "sounds" / entry.name)
        ours = self.dialplan_src / "sounds"
        for path in sorted(ours.rglob("*.wav")):
            target = data / "sounds" / path.relative_to(ours)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)

    def sound_file(self, name: str) -> str:
        """A prompt's file as Asterisk inside the root finds it (WAV, as shipped)."""
        return f"{self.inside}/data/sounds/{name}.wav"

    def install_dialplan(self, etc: Path) -> None:
        """The project's dialplan, as a site installs it (``linkgw dialplan``)."""
        install(self.config, self.dialplan_src, etc)

    def files(self) -> dict[str, str]:
        """Asterisk's configuration files, by name."""
        return {
            "asterisk.conf": self._asterisk_conf(),
            "modules.conf": "[modules]\nautoload=yes\n"
            + "".join(f"noload => {m}.so\n" for m in NOLOAD),
            "logger.conf": "[general]\n[logfiles]\n"
            "messages.log => notice,warning,error,verbose(3),dtmf\n",
            "pjsip.conf": self._pjsip_conf(),
            "rtp.conf": f"[general]\nrtpstart={self.ports.rtp_start}\n"
            f"rtpend={self.ports.rtp_start + RTP_PORTS - 1}\nstrictrtp=no\n",
            "manager.conf": self._manager_conf(),
            "extensions.conf": self._extensions_conf(),
            "features.conf": "[general]\nfeaturedigittimeout=1500\n\n[applicationmap]\n"
            "#include linkgw_features.conf\n",
            "confbridge.conf": "#include linkgw_confbridge.conf\n",
            "http.conf": "[general]\nenabled=no\n",
            "cdr.conf": "[general]\nenable=no\n",
            "cel.conf": "[general]\nenable=no\n",
            "acl.conf": "", "udptl.conf": "", "indications.conf": "",
            "musiconhold.conf": "[default]\nmode=files\ndirectory=moh\n\n"
            "#include linkgw_musiconhold.conf\n",
        }

    def _asterisk_conf(self) -> str:
        b = self.inside
        return (
            "[directories]\n"
            f"astetcdir => {b}/etc\nastrundir => {b}/run\nastlogdir => {b}/log\n"
            f"astspooldir => {b}/spool\nastvarlibdir => /var/lib/asterisk\n"
            f"astdbdir => {b}/db\nastkeydir => {b}/lib\nastcachedir => {b}/cache\n"
            f"astdatadir => {b}/data\n"
            "astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules\n"
            "[options]\nverbose=3\ndebug=0\nnocolor=yes\nhideconnect=yes\n"
            f"systemname=linkgw-{self.name}\n"
        )

    def _pjsip_conf(self) -> str:
        out = [
            # a trunk is known by its address first: a caller number equal to a phone's
            # name must not make a call from the other PBX that phone's
            "[global]\ntype=global\nendpoint_identifier_order=ip,username\n"
            "user_agent=linkgw-lab\n",
            # A phone that is not running gets INVITE retransmissions until timer B; at
            # the default 32 s they reach the next test's phone on that port. 64 x T1.
            "[system]\ntype=system\ntimer_t1=100\ntimer_b=6400\n",
            f"[lab-udp]\ntype=transport\nprotocol=udp\n"
            f"bind={self.ports.host}:{self.ports.sip}\n",
        ]
        for phone in self.phones:
            out.append(
                f"[{phone.name}]\ntype=endpoint\ntransport=lab-udp\ncontext={phone.context}\n"
                "disallow=all\nallow=ulaw,alaw\ndirect_media=no\ndtmf_mode=rfc4733\n"
                f"rtp_symmetric=yes\ntrust_id_inbound=yes\naors={phone.name}\n"
                f"[{phone.name}]\ntype=aor\nmax_contacts=1\n"
                f"contact=sip:{phone.name}@{self.ports.host}:{phone.port}\n"
            )
        return "\n".join(out) + self.extra_pjsip

    def _manager_conf(self) -> str:
        """The gateway's AMI user with exactly the permission classes the shipped
        example documents; the tests' observer (``lab-probe``) sees everything."""
        read, write = documented_classes(
            (self.dialplan_src / "linkgw_manager.conf.example").read_text(encoding="utf-8"))
        out = (
            f"[general]\nenabled=yes\nbindaddr=127.0.0.1\nport={self.ports.ami}\n"
            "displayconnects=no\ntimestampevents=yes\n\n"
            f"[{self.ami_user}]\nsecret={self._ami_secret}\n"
            "deny=0.0.0.0/0.0.0.0\npermit=127.0.0.1/255.255.255.255\n"
            f"read={read}\nwrite={write}\nwritetimeout=1000\n"
        )
        if self._probe_secret:
            out += (f"\n[{PROBE_USER}]\nsecret={self._probe_secret}\n"
                    "deny=0.0.0.0/0.0.0.0\npermit=127.0.0.1/255.255.255.255\n"
                    "read=all\nwrite=all\nwritetimeout=1000\n")
        return out

    def _extensions_conf(self) -> str:
        return (
            "[general]\nstatic=yes\nwriteprotect=yes\n\n"
            "[globals]\n#include linkgw_globals.conf\n\n"
            "#include linkgw_extensions.conf\n\n"
            "; lab only: the citizen phone may call either line, or the conformance test\n"
            "[lab-citizen]\ninclude => linkgw-110\ninclude => linkgw-12345\n"
            "include => lab-conformance\n"
            "[lab-conformance]\n"
            "exten => conformance,1,Answer()\n"
            " same => n,Set(LAB_CALLER_NAME=${CALLERID(name)})\n"
            " same => n,AGI(agi://127.0.0.1:${LAB_CONFORMANCE_PORT}/conformance)\n"
            " same => n,Hangup()\n"
            "; rings and never answers, without SIP traffic that could reach a later test\n"
            "exten => ringforever,1,Ringing()\n"
            " same => n,Wait(30)\n"
            "; lab only: where the seats' and 12345's own dialling would go\n"
            "[lab-seat]\nexten => _X.,1,Hangup(21)\n"
            "[lab-12345]\nexten => _X.,1,Hangup(21)\n"
        )

    # -- process ---------------------------------------------------------------------
    def _cli(self, command: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        return asterisk_cli(self.root, self.inside, command, timeout)

    def cli(self, command: str) -> str:
        """Run one CLI command on the running Asterisk (for diagnostics)."""
        return self._cli(command).stdout

    def start(self, prepare: Callable[[Path], None] | None = None) -> None:
        """Write the config (then ``prepare(base)`` may add files), start, wait to boot."""
        self.write_config()
        if prepare is not None:
            prepare(self.base)
        self.proc = boot_chrooted(self.root, self.inside, self.base,
                                  self.log_dir / "asterisk.out")
        self._cli("agi set debug on")  # every AGI command Asterisk receives is logged

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def messages(self) -> str:
        """Asterisk's messages.log so far."""
        path = self.base / "log/messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.alive():
            try:
                self._cli("core stop now", timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stop(timeout=10)
        for kept, name in ((self.base / "log/messages.log", "asterisk-messages.log"),
                           (self.base / "gw/linkgw-agi.log", "linkgw-agi.log")):
            if kept.exists():
                shutil.copyfile(kept, self.log_dir / name)
        shutil.rmtree(self.base, ignore_errors=True)
