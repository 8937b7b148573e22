"""Gateway configuration: YAML in, a frozen :class:`Config` out, or an error with its line.

Every key is checked: an unknown key (a typo), a wrong type or a missing secret is a
:class:`ConfigError` naming the file, the line and the key. Secrets never sit in the
file: the file names the environment variable that holds them (``secret_env``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from gateway.deadlines import MAX_WORKING_DAYS
from gateway.pins import PinError, parse_pins


class ConfigError(Exception):
    code = "config_invalid"

    def __init__(self, source: str, line: int | None, key: str, message: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {key}: {message}")
        self.source, self.line, self.key = source, line, key


@dataclass(frozen=True)
class FastAgiConfig:
    listen: str = "tcp:4573:interface=127.0.0.1"
    allow: tuple[str, ...] = ("127.0.0.1", "::1")
    max_sessions: int = 200
    session_timeout: float = 10.0


@dataclass(frozen=True)
class AmiConfig:
    endpoint: str = "tcp:host=127.0.0.1:port=5038"
    username: str = "linkgw"
    secret: str = ""
    auth: str = "md5"


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"  # ignored when sentinels are given
    sentinels: tuple[str, ...] = ()  # "host:port" of Redis Sentinels, for failover
    service: str = "linkgw"  # the Sentinel master name
    prefix: str = "linkgw"
    # A hard cap on each stream (XADD MAXLEN ~); 0: none. A cap can drop entries a
    # consumer group has not read: retention (linkgw retention) trims safely instead.
    events_maxlen: int = 0
    feed_group: str = "12345"  # consumer group created for the 12345 system on its feed
    username: str = ""  # Redis ACL user ("": the default user)
    password: str = ""  # from password_env
    retry_delay: float = 1.0
    spool_dir: str = "/var/lib/linkgw/spool"  # changes kept here while Redis is down
    # Sentinel sites: a change counts as written once this many replicas have it
    min_replicas: int = 0
    replica_timeout: float = 1.0  # seconds to wait for them (then it is tried again)


@dataclass(frozen=True)
class ClusterConfig:
    instance: str = ""  # this gateway's name among several ("": the host name)
    lease_ttl: float = 6.0  # seconds a live bridge's lease lasts unless renewed
    sweep_interval: float = 2.0  # seconds between renewing leases and adopting orphans
    # A live bridge of another Asterisk that no gateway has held for this long (counted
    # from its request) is closed as unknown: that Asterisk has no gateway any more.
    stale_after: float = 43200.0


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "tcp:8645:interface=127.0.0.1"  # "" turns the HTTP API off
    token: str = ""  # the admin role's, from token_env; required when listen is set
    token_12345: str = ""  # the 12345 system's role, from token_12345_env ("": no such role)
    token_supervisor: str = ""  # read only, from token_supervisor_env ("": no such role)
    # the police liaison seat at 12345: work orders only (read, accept, assign, answer)
    token_liaison: str = ""
    mask_numbers: bool = True  # the supervisor role sees citizens' numbers and names masked


@dataclass(frozen=True)
class TicketConfig:
    pattern: str = r"^\d{8,20}$"  # what a 12345 work-order number looks like here
    feedback_hours: float = 72.0  # default deadline for feedback, per category overrides
    # 110's answer to a 12345 work order without a call, from its acceptance (per
    # category: response_hours in categories.yaml)
    workorder_response_hours: float = 24.0
    # a work order must be accepted (受理) this long after 12345 dispatched it; one never
    # accepted is overdue from then on and counts against the response rate
    workorder_accept_minutes: float = 60.0
    # deadlines in working days instead of hours (0: hours): 110's answer to a work
    # order, and 12345's feedback on a bridge handed to it; a category may set its own
    # (response_days, feedback_days in categories.yaml)
    workorder_response_days: int = 0
    feedback_days: int = 0
    # the site's own dates, before the official calendar (chinese-calendar): holidays it
    # lacks and weekend days worked (调休), e.g. next year's before a release has them
    days_off: tuple[str, ...] = ()
    make_up_days: tuple[str, ...] = ()
    # an extension (延期) may ask for at most this many working days (hours: ×24)
    extension_max_days: int = 30
    inbound_stream: str = "tickets:in"  # the stream the 12345 side may write to
    # the centre's own time: where a day (of figures, reports, look-ups by day) begins
    time_zone: str = "Asia/Shanghai"
    # when each shift begins, the centre's time (linkgw handover lists what the one
    # that is ending hands over)
    shifts: tuple[str, ...] = ("08:00", "20:00")


@dataclass(frozen=True)
class RetentionConfig:
    days: int = 0  # records older than this many days are exported, then removed (0: kept)
    export_dir: str = "/var/lib/linkgw/export"  # one JSON-lines file per UTC day
    # consumer groups whose unread entries trimming never drops: "<stream>/<group>"
    # (with push.url set, the push's group on its feed is added: see retention_groups)
    groups: tuple[str, ...] = ("feed:12345/12345", "feed:110/110", "tickets:in/linkgw")
    chain_key: str = ""  # from chain_key_env: seals each day's chain (HMAC-SHA256)
    # The Redis user retention and check-records log in as (they list keys with SCAN,
    # which the gateway's user may not); "": the gateway's own
    redis_username: str = ""
    redis_password: str = ""  # from redis_password_env


@dataclass(frozen=True)
class Line:
    """A further line the 110 call-taker can hand a citizen to with a key of its own
    (122 traffic police, 119 fire, 120 ambulance, 12315 consumer complaints), as the
    one key hands them to 12345. Its bridges are ``110-><name>``; their changes go to
    the feed ``feed:<name>``."""

    name: str = ""  # its number: "122"
    label: str = ""  # what people call it: 交警
    key: str = ""  # the key that hands the citizen to it: "*3"
    target: str = ""  # its dial string (a trunk: PJSIP/122@trunk-122)
    alternate: str = ""  # tried after transfer.attempts failures at target
    notice_prompt: str = ""  # the citizen's notice at the key ("": transfer.notice_prompt)
    display_prefix: str = ""  # before the citizen's name at its phone ("": none)
    # from token_env: the bearer token of its system's API role (its bridges, read only)
    token: str = field(default="", repr=False)
    # its feedback deadline on a bridge handed to it, from the hand-off (0 and 0: the
    # category's, else the site's, as for 12345)
    feedback_days: int = 0  # working days (the site's calendar)
    feedback_hours: float = 0.0  # hours, when feedback_days is 0


#: Why the other line declines a consult transfer, as shipped (transfer.decline_reasons):
#: the code is typed after transfer.decline_key.
DECLINE_REASONS: tuple[tuple[str, str], ...] = (
    ("1", "属公安职责，须警方处置"),
    ("2", "情况紧急，须现场处置"),
    ("3", "不属于12345受理范围"),
    ("4", "应由其他专线处理"),
    ("5", "信息不全，无法受理"),
    ("9", "其他原因"),
)


def line_named(lines: tuple[Line, ...], name: str) -> Line | None:
    return next((line for line in lines if line.name == name), None)


@dataclass(frozen=True)
class TransferConfig:
    # 110 -> 12345
    target: str = "PJSIP/12345"  # dial string of the 12345 hotline
    alternate: str = ""  # tried after `attempts` failures at target (e.g. a liaison seat)
    # the police liaison seat at 12345: an item with `target: liaison` (categories.yaml)
    # is handed there instead of the queue ("": no such seat, the queue takes them)
    liaison: str = ""
    # 12345 -> 110 (a 12345 agent presses the key)
    reverse_target: str = "PJSIP/seat2"  # a 110 seat or the police liaison seat
    reverse_alternate: str = ""
    response_deadline: float = 1800.0  # seconds 110 has to answer a 12345 work order
    # policy
    attempts: int = 2  # tries at the target before the alternate
    retry_delay: float = 2.0  # seconds between tries
    ring_timeout: float = 15.0  # seconds the other line may ring
    # keys
    onekey: str = "*1"
    consult_key: str = "*2"
    emergency_key: str = "*0"
    # the other line's agent in a consult conference declines with a reason: this key,
    # then the reason's code (its leg ends; decline_reasons names the codes)
    decline_key: str = "*9"
    code_digits: int = 3  # digits of an item code typed after the key (0: no prompt)
    code_timeout: float = 3.0  # seconds to type it
    categories: str = "categories.yaml"  # relative to the config file
    originate_timeout: float = 2.0  # seconds the key waits for Asterisk to queue the dial
    # what people hear: Asterisk sound names; by default linkgw's Mandarin prompts
    # (dialplan/sounds/linkgw/zh/, installed by linkgw install), a site's own recordings
    # or Asterisk's English sounds by config (docs/operating.md, "Prompts")
    refusal_prompt: str = "linkgw/zh/refused"  # the key-presser: no transfer
    emergency_prompt: str = "linkgw/zh/emergency"  # the key-presser: emergency flag set
    error_tone: str = "linkgw/zh/error"  # the key-presser: the gateway or AMI is down
    code_prompt: str = "linkgw/zh/code"  # the key-presser: type the item code now
    notice_prompt: str = "linkgw/zh/notice"  # the citizen: the call goes to the other line
    # how long notice_prompt lasts: the citizen hears it at the key, while the other line
    # is dialled and the code typed, and the key holds the call-taker until it is over
    # (0: the notice plays when the citizen joins the conference, after the answer)
    notice_seconds: float = 3.5  # the shipped notice lasts 3.43 s
    hold_music_dir: str = "moh"  # what the citizen hears after the notice (musiconhold.conf)
    recording_prompt: str = ""  # the citizen, after the notice: the call is recorded
    failed_prompt: str = "linkgw/zh/failed"  # the key-presser: the other line was not reached
    return_prompt: str = "linkgw/zh/return"  # the citizen, before the seats ring again
    moh_class: str = "default"  # what the citizen hears while the key is being used
    # where Asterisk reaches the gateway, what it rings, where it records
    agi_url: str = "agi://127.0.0.1:4573"
    agi_backup_url: str = ""  # a second gateway, tried when the first does not answer
    seats: str = "PJSIP/seat1&PJSIP/seat2"  # what a citizen's 110 call rings
    agents: str = "PJSIP/12345"  # what a citizen's 12345 call rings
    recording_dir: str = "/var/spool/asterisk/monitor/linkgw"
    # with the gateway unreachable, the key blind-transfers the citizen ("blind") or
    # only plays the error tone ("none")
    fallback: str = "blind"
    default_code: str = ""  # the item code used when none is typed after the key
    # a key with no item code typed: "no" (counted unclassified in the figures), "flag"
    # (also marked on the record: unclassified: yes) or "refuse" (cancelled, the refusal
    # prompt, as a never-transfer item)
    require_code: str = "no"
    # what the INVITE to the other line carries (gateway/transfer/invite.py)
    invite_headers: bool = True  # User-to-User, X-Linkgw-*, Call-Info
    centre_id: str = "110"  # this centre's id among the other line's callers
    display_prefix: str = "110转"  # shown before the citizen's name at 12345's phone
    reverse_display_prefix: str = "12345转"  # the same, at a 110 seat (12345 -> 110)
    call_info_url: str = ""  # e.g. https://110-gw.example/bridges/{bridge_id} ("": none)
    # further lines with a key of their own (122, 119, 120, 12315): see Line
    lines: tuple[Line, ...] = ()
    # why the other line declines a consult transfer, by the code typed after
    # decline_key: (code, reason) pairs; the joint meeting's list shows the reason
    decline_reasons: tuple[tuple[str, str], ...] = DECLINE_REASONS
    decline_prompt: str = "linkgw/zh/declined"  # the declining agent: reason noted, thanks

    def decline_reason(self, code: str) -> str | None:
        """The reason of that code, or None (no such code)."""
        return dict(self.decline_reasons).get(code)

    def line(self, name: str) -> Line | None:
        """The further line of that name, or None (12345 itself is no further line)."""
        return line_named(self.lines, name)

    def destination(self, side: str, line: str = "") -> Line:
        """The line a key pressed on ``side`` hands the citizen to, as a :class:`Line`:
        a further line's own key (``line``), else the other of 110 and 12345, whose
        values are this section's (``target``, ``alternate``, ``display_prefix``; for
        12345 -> 110 the ``reverse_`` ones)."""
        further = self.line(line) if line and side == "110" else None
        if further is not None:
            return further
        if side == "110":
            return Line("12345", "12345", self.onekey, self.target, self.alternate,
                        self.notice_prompt, self.display_prefix)
        return Line("110", "110", self.onekey, self.reverse_target, self.reverse_alternate,
                    self.notice_prompt, self.reverse_display_prefix)


@dataclass(frozen=True)
class PushConfig:
    """The 12345 system is told of each change of its bridges by an HTTPS POST
    (gateway/push/): signed, retried, in order, from the feed stream as outbox."""

    url: str = ""  # the receiver ("": no push)
    secret: str = ""  # from secret_env: the HMAC-SHA256 key shared with the receiver
    ca_file: str = ""  # PEM: the CA the receiver's certificate must come from ("": system's)
    allow_http: bool = False  # plain http:// to a host that is not loopback
    feed: str = "12345"  # whose feed is pushed (<prefix>:feed:<feed>): 12345, 110, a line
    timeout: float = 10.0  # seconds one POST may take
    retry_initial: float = 1.0  # seconds before the first retry, doubled each time
    retry_max: float = 60.0  # at most this between retries
    dead_after: float = 86400.0  # an event older than this goes to the dead letters
    poll: float = 0.2  # seconds between looks at the outbox when it is empty


@dataclass(frozen=True)
class LogConfig:
    format: str = "json"
    level: str = "info"
    file: str = ""  # "": standard output (process mode: linkgw-agi.log beside the spool)


@dataclass(frozen=True)
class DutyConfig:
    """The 24-hour duty phone (gateway/duty/): a new work order rings it until someone
    accepts it by pressing 1."""

    numbers: tuple[str, ...] = ()  # dial strings, first to last: ("PJSIP/duty1", …); ()= off
    rings_per_number: int = 2  # rings of one number before the next one is rung
    every: float = 300.0  # seconds between two rings of an order nobody accepted
    max_rings: int = 12  # then the order is left to the lists (overdue, handover)
    ring_timeout: float = 30.0  # seconds one ring may go unanswered
    identity: str = "extension"  # who accepted: the extension, or "pin": a PIN's officer
    pins: str = ""  # from pins_env: "J4201:4821,J4202:1937" (officer:PIN, comma separated)
    caller_id: str = "12345"  # what the duty phone shows as the caller's number
    poll: float = 2.0  # seconds between looks for an order whose ring is due


@dataclass(frozen=True)
class Config:
    fastagi: FastAgiConfig = FastAgiConfig()
    ami: AmiConfig = AmiConfig()
    redis: RedisConfig = RedisConfig()
    transfer: TransferConfig = TransferConfig()
    cluster: ClusterConfig = ClusterConfig()
    http: HttpConfig = HttpConfig()
    tickets: TicketConfig = TicketConfig()
    log: LogConfig = LogConfig()
    retention: RetentionConfig = RetentionConfig()
    push: PushConfig = PushConfig()
    duty: DutyConfig = DutyConfig()


_DTMF = re.compile(r"[0-9*#A-D]{1,8}\Z")
_Check = Callable[[Any], str | None]


def _dtmf(value: Any) -> str | None:
    return None if isinstance(value, str) and _DTMF.match(value) else \
        "must be 1 to 8 DTMF digits (0-9 * # A-D)"


def _one_of(*choices: str) -> _Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _regex(value: Any) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a regular expression: {exc}"
    return None


def _time_zone(value: Any) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ValueError, ZoneInfoNotFoundError):
        return f"unknown time zone {str(value)[:40]!r} (an IANA name: Asia/Shanghai, UTC)"
    return None


def _days(value: Any, least: int) -> str | None:
    return None if least <= value <= MAX_WORKING_DAYS else \
        f"must be {least} to {MAX_WORKING_DAYS} working days"


def _dates(value: Any) -> str | None:
    for text in value:
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
                raise ValueError
            date.fromisoformat(text)
        except ValueError:
            return f"{str(text)[:20]!r} is not a date YYYY-MM-DD"
    return None


def _display(value: Any) -> str | None:
    """A display-name prefix: at most 16 printable characters, none that ends a SIP
    display name or an AMI value (quote, backslash, angle brackets, comma)."""
    bad = [c for c in value if not c.isprintable() or c in '"\\<>,']
    if bad or len(value) > 16:
        return "must be at most 16 printable characters, without \" \\ < > ,"
    return None


def _call_info_url(value: Any) -> str | None:
    """Where the other line's agent can look the bridge up: an http(s) URL of characters
    that need no escaping in a SIP header or an AMI value."""
    if value == "" or re.fullmatch(r"https?://[A-Za-z0-9._~:/?#@&+;=%{}-]{1,400}", value):
        return None
    return "must be an http(s) URL of A-Z a-z 0-9 . _ ~ : / ? # @ & + ; = % - " \
        "({bridge_id} is replaced by the bridge's id)"


_CHECKS: dict[tuple[str, str], _Check] = {
    ("transfer", "onekey"): _dtmf,
    ("transfer", "consult_key"): _dtmf,
    ("transfer", "emergency_key"): _dtmf,
    ("transfer", "decline_key"): _dtmf,
    ("transfer", "decline_prompt"): lambda v: None if re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", v)
    else "must be a sound name of A-Z a-z 0-9 _ . / -",
    ("transfer", "attempts"): _positive,
    ("transfer", "require_code"): _one_of("no", "flag", "refuse"),
    ("tickets", "shifts"): lambda v: None if 1 <= len(v) <= 6 and all(
        re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", s) for s in v) and
        list(v) == sorted(set(v)) else "must be 1 to 6 times HH:MM, in order, each once",
    ("transfer", "code_digits"): lambda v: None if 0 <= v <= 4 else "must be 0 to 4",
    ("transfer", "fallback"): _one_of("blind", "none"),
    ("transfer", "default_code"): lambda v: None if v == "" or v.isdigit() else
    "must be digits or empty",
    ("transfer", "ring_timeout"): _positive,
    ("transfer", "code_timeout"): _positive,
    ("transfer", "retry_delay"): _positive,
    ("transfer", "response_deadline"): _positive,
    ("redis", "retry_delay"): _positive,
    ("redis", "events_maxlen"): _not_negative,
    ("redis", "min_replicas"): _not_negative,
    ("redis", "replica_timeout"): _positive,
    ("transfer", "notice_seconds"): lambda v: None if 0 <= v <= 60 else "must be 0 to 60",
    ("transfer", "hold_music_dir"): lambda v: None if re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", v)
    else "must be a folder name of A-Z a-z 0-9 _ . / -",
    ("fastagi", "session_timeout"): _positive,
    ("transfer", "originate_timeout"): _positive,
    ("cluster", "lease_ttl"): _positive,
    ("cluster", "sweep_interval"): _positive,
    ("cluster", "stale_after"): _positive,
    ("fastagi", "max_sessions"): _positive,
    ("fastagi", "allow"): lambda v: None if v else
    "must list the Asterisk servers' addresses (an empty list would let anyone in)",
    ("ami", "auth"): _one_of("md5", "plain"),
    ("log", "format"): _one_of("json", "console"),
    ("tickets", "pattern"): _regex,
    ("tickets", "feedback_hours"): _positive,
    ("tickets", "workorder_response_hours"): _positive,
    ("tickets", "workorder_accept_minutes"): _positive,
    ("tickets", "time_zone"): _time_zone,
    ("tickets", "workorder_response_days"): lambda v: _days(v, 0),
    ("tickets", "feedback_days"): lambda v: _days(v, 0),
    ("tickets", "extension_max_days"): lambda v: _days(v, 1),
    ("tickets", "days_off"): _dates,
    ("tickets", "make_up_days"): _dates,
    ("log", "level"): _one_of("debug", "info", "warning", "error"),
    ("transfer", "centre_id"): lambda v: None if re.fullmatch(r"[A-Za-z0-9_.:+-]{1,32}", v)
    else "must be 1 to 32 of A-Z a-z 0-9 _ . : + -",
    ("transfer", "display_prefix"): _display,
    ("transfer", "reverse_display_prefix"): _display,
    ("transfer", "call_info_url"): _call_info_url,
    ("push", "url"): lambda v: None if v == "" or re.fullmatch(
        r"https?://[A-Za-z0-9._~:/?#@&+;=%\[\]-]{1,400}", v) else "must be an http(s) URL",
    ("push", "timeout"): _positive,
    ("push", "retry_initial"): _positive,
    ("push", "retry_max"): _positive,
    ("push", "dead_after"): _positive,
    ("push", "poll"): _positive,
    ("push", "feed"): lambda v: None if re.fullmatch(r"[0-9]{3,6}", v) else
    "must be 12345, 110 or a further line's number (transfer.lines)",
    ("duty", "numbers"): lambda v: None if len(v) <= 8 and all(
        re.fullmatch(r"[A-Za-z0-9_./@:-]{1,80}", n) for n in v) else
    "must be at most 8 dial strings of A-Z a-z 0-9 _ . / @ : - (PJSIP/duty1)",
    ("duty", "rings_per_number"): _positive,
    ("duty", "every"): _positive,
    ("duty", "max_rings"): _positive,
    ("duty", "ring_timeout"): _positive,
    ("duty", "poll"): _positive,
    ("duty", "identity"): _one_of("extension", "pin"),
    ("duty", "caller_id"): lambda v: None if re.fullmatch(r"[0-9]{1,20}", v) else
    "must be 1 to 20 digits",
}

#: Numbers of the lines linkgw has built in: a further line is none of them.
BUILT_IN_LINES = ("110", "12345")
_DIAL = re.compile(r"[A-Za-z0-9_./@:-]{1,200}\Z")  # one channel: AMI Originate dials one
_LINE_CHECKS: dict[str, _Check] = {
    "name": lambda v: None if re.fullmatch(r"[0-9]{3,6}", v) and v not in BUILT_IN_LINES
    else "must be the line's number, 3 to 6 digits, neither 110 nor 12345",
    "label": lambda v: None if 0 < len(v) <= 16 and v.isprintable() else
    "must be 1 to 16 printable characters",
    "key": _dtmf,
    "target": lambda v: None if _DIAL.match(v) else
    "must be one dial string of A-Z a-z 0-9 _ . / @ : - (PJSIP/122@trunk-122)",
    "alternate": lambda v: None if v == "" or _DIAL.match(v) else
    "must be empty or one dial string of A-Z a-z 0-9 _ . / @ : -",
    "notice_prompt": lambda v: None if v == "" or re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", v)
    else "must be a sound name of A-Z a-z 0-9 _ . / -",
    "display_prefix": _display,
    "feedback_days": lambda v: None if re.fullmatch(r"[0-9]{1,2}", v) and 0 < int(v) <= 60
    else "must be 1 to 60 working days",
    "feedback_hours": lambda v: None if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,2})?", v) and
    0 < float(v) <= 8760 else "must be a number of hours, more than 0, at most 8760",
}
_LINE_NUMBERS: dict[str, Callable[[str], Any]] = {"feedback_days": int,
                                                  "feedback_hours": float}
MAX_LINES = 8

_SECRETS = {"secret", "token", "token_12345", "token_supervisor", "token_liaison",
            "password", "chain_key", "redis_password", "pins"}
MIN_TOKEN = 16  # characters of an API token

_SECTIONS: dict[str, type[Any]] = {
    "fastagi": FastAgiConfig,
    "ami": AmiConfig,
    "redis": RedisConfig,
    "transfer": TransferConfig,
    "cluster": ClusterConfig,
    "http": HttpConfig,
    "tickets": TicketConfig,
    "log": LogConfig,
    "retention": RetentionConfig,
    "push": PushConfig,
    "duty": DutyConfig,
}


def _convert(expected: Any, value: Any) -> Any:
    """Coerce a YAML scalar to the default's type, or raise TypeError/ValueError."""
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if isinstance(expected, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("must be a number")
        return float(value)
    if isinstance(expected, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("must be a whole number")
        return value
    if isinstance(expected, tuple):
        # an unquoted date in YAML (2027-01-01) is read as a date: its text is meant
        value = [v.isoformat() if isinstance(v, date) else v for v in value] \
            if isinstance(value, list) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("must be a list of strings")
        return tuple(value)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise TypeError("must be a string")
    return str(value)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


#: What a process-mode AGI program needs from its environment: the AMI secret and the
#: Redis password. The API tokens, the push secret and the chain key belong to other
#: processes (the gateway service, linkgw push, retention): Asterisk's environment
#: need not hold them.
PROCESS_SECRETS = frozenset({("ami", "secret"), ("redis", "password")})
#: Read when set, never required at load: only the operator's jobs (retention,
#: check-records) use the maintenance user's password, and the gateway service's
#: environment need not hold it (they say so when it is missing).
JOB_SECRETS = frozenset({("retention", "redis_password")})


def load_config(
    text: str, source: str = "<config>", environ: Mapping[str, str] | None = None,
    secrets: bool = True, process_mode: bool = False,
) -> Config:
    """Parse and validate; every problem is a ConfigError with file and line.

    ``secrets=False`` (for the CLI, which needs no secret) leaves unset secrets empty.
    ``process_mode``: only :data:`PROCESS_SECRETS` must be set; the others are read when
    set, else left empty.
    """
    env = os.environ if environ is None else environ
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(source, mark.line + 1 if mark else None, "(file)",
                          f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise ConfigError(source, _line(root), "(file)", "must be a mapping of sections")
    sections: dict[str, Any] = {}
    nodes = root.value if root is not None else []
    _no_twice(source, "", nodes)
    for key_node, section_node in nodes:
        name = key_node.value
        if name not in _SECTIONS:
            raise ConfigError(source, _line(key_node), name,
                              f"unknown section (known: {', '.join(_SECTIONS)})")
        sections[name] = _section(source, name, section_node, env, secrets, process_mode)
    config = Config(**sections)
    if config.transfer.require_code == "refuse" and config.transfer.code_digits == 0:
        raise ConfigError(source, None, "transfer.require_code",
                          "refuse with code_digits: 0 (no code window) would refuse every key")
    if config.transfer.require_code != "no" and config.transfer.default_code:
        raise ConfigError(source, None, "transfer.require_code",
                          f"{config.transfer.require_code} never happens with a default_code "
                          f"({config.transfer.default_code}): a key without a code takes it")
    _check_keys(source, config.transfer)
    if config.push.feed not in (*BUILT_IN_LINES, *(line.name for line in config.transfer.lines)):
        raise ConfigError(source, None, "push.feed",
                          f"no line {config.push.feed}: must be 12345, 110 or a further "
                          "line's number (transfer.lines)")
    both = set(config.tickets.days_off) & set(config.tickets.make_up_days)
    if both:
        raise ConfigError(source, None, "tickets.make_up_days",
                          f"{min(both)} is also in tickets.days_off: a day is one or the other")
    if secrets and process_mode:
        if not config.ami.secret:
            raise ConfigError(source, None, "ami.secret_env", "the AMI secret is empty")
    elif secrets:
        _check_secrets(source, config)
    return config


def _check_secrets(source: str, config: Config) -> None:
    if not config.ami.secret:
        raise ConfigError(source, None, "ami.secret_env", "the AMI secret is empty")
    if config.http.listen and not config.http.token:
        raise ConfigError(source, None, "http.token_env",
                          "the HTTP API needs a token: set http.token_env, or listen: \"\"")
    if config.http.listen and len(config.http.token) < MIN_TOKEN:
        raise ConfigError(source, None, "http.token_env",
                          f"the API token is too short: at least {MIN_TOKEN} characters")
    roles = {"http.token_12345_env": config.http.token_12345,
             "http.token_supervisor_env": config.http.token_supervisor,
             "http.token_liaison_env": config.http.token_liaison,
             **{f"transfer.lines[{line.name}].token_env": line.token
                for line in config.transfer.lines}}
    for key, token in roles.items():
        if token and len(token) < MIN_TOKEN:
            raise ConfigError(source, None, key,
                              f"the API token is too short: at least {MIN_TOKEN} characters")
    _check_push(source, config.push)
    if config.duty.identity == "pin":
        try:
            parse_pins(config.duty.pins)
        except PinError as exc:
            raise ConfigError(source, None, "duty.pins_env", str(exc)) from None
    given = [t for t in (config.http.token, *roles.values()) if t]
    if len(given) != len(set(given)):
        raise ConfigError(source, None, "http", "two roles have the same token: each role "
                          "needs its own")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def retention_groups(config: Config) -> tuple[str, ...]:
    """The consumer groups whose unread entries retention never trims: the configured
    ones, the push's on its feed when the push is on, and the push's on each further
    line's feed (its own ``linkgw push`` runs with another config: an event it has not
    delivered is never trimmed away, and a feed no push has read yet is kept whole)."""
    push = (f"feed:{config.push.feed}/push",) if config.push.url else ()
    lines = tuple(f"feed:{line.name}/push" for line in config.transfer.lines)
    return tuple(dict.fromkeys((*config.retention.groups, *push, *lines)))


def _check_push(source: str, push: PushConfig) -> None:
    """A push needs its secret, and TLS unless the receiver is on loopback or the
    config says plain http on purpose."""
    if not push.url:
        return
    if not push.secret:
        raise ConfigError(source, None, "push.secret_env",
                          "the push needs a secret to sign with (push.secret_env)")
    if len(push.secret) < MIN_TOKEN:
        raise ConfigError(source, None, "push.secret_env",
                          f"the push secret is too short: at least {MIN_TOKEN} characters")
    try:
        parts = urlsplit(push.url)
        hostname = parts.hostname
    except ValueError as exc:
        raise ConfigError(source, None, "push.url", f"not a URL: {exc}") from exc
    if "@" in parts.netloc or hostname is None:
        raise ConfigError(source, None, "push.url",
                          "must name a host, without user:password@")
    if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?", parts.netloc):
        raise ConfigError(source, None, "push.url",
                          f"not a URL: the host {parts.netloc[:60]!r} is not a name, an "
                          "IPv4 address or a bracketed IPv6 address")
    host = f"[{hostname}]" if ":" in hostname else hostname
    if push.url.startswith("http://") and not push.allow_http and host not in LOOPBACK_HOSTS:
        raise ConfigError(source, None, "push.url",
                          "plain http:// to another host: use https://, or say "
                          "allow_http: true")
    if push.ca_file and not Path(push.ca_file).is_file():
        raise ConfigError(source, None, "push.ca_file", f"no such file: {push.ca_file}")


def _no_twice(source: str, section: str, pairs: list[tuple[yaml.Node, yaml.Node]]) -> None:
    """YAML lets a key be given twice (the last wins, silently): here it is an error."""
    seen: dict[str, int] = {}
    for key_node, _ in pairs:
        name = str(key_node.value)
        if name in seen:
            dotted = f"{section}.{name}" if section else name
            raise ConfigError(source, _line(key_node), dotted,
                              f"given twice (first on line {seen[name]})")
        seen[name] = _line(key_node)


def _section(source: str, name: str, node: yaml.Node, env: Mapping[str, str],
             secrets: bool, process_mode: bool = False) -> Any:
    cls = _SECTIONS[name]
    defaults = cls()
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(source, _line(node), name, "must be a mapping")
    values: dict[str, Any] = {}
    _no_twice(source, name, node.value)
    for key_node, value_node in node.value:
        key = key_node.value
        dotted = f"{name}.{key}"
        secret = key.removesuffix("_env")
        if key.endswith("_env") and secret in _SECRETS:
            var = value_node.value
            needed = secrets and (not process_mode or (name, secret) in PROCESS_SECRETS) \
                and (name, secret) not in JOB_SECRETS
            if needed and (not isinstance(var, str) or var not in env):
                raise ConfigError(source, _line(value_node), dotted,
                                  f"environment variable {var!r} is not set")
            values[secret] = env.get(var, "") if isinstance(var, str) else ""
            continue
        if key in _SECRETS:
            raise ConfigError(source, _line(key_node), dotted,
                              f"secrets are not kept in the file: use {key}_env: VARIABLE")
        if not hasattr(defaults, key):
            raise ConfigError(source, _line(key_node), dotted, "unknown key")
        if (name, key) == ("transfer", "lines"):
            values[key] = _lines(source, value_node, env, secrets and not process_mode)
            continue
        if (name, key) == ("transfer", "decline_reasons"):
            values[key] = _decline_reasons(source, value_node)
            continue
        try:
            raw = yaml.safe_load(yaml.serialize(value_node))
        except yaml.YAMLError as exc:  # a tag SafeLoader does not know (!!python/...)
            raise ConfigError(source, _line(value_node), dotted,
                              f"not a plain value: {getattr(exc, 'problem', exc)}") from exc
        except ValueError as exc:  # what YAML reads as a date or time but is none (2-30)
            raise ConfigError(source, _line(value_node), dotted,
                              f"not a valid value: {exc}") from exc
        try:
            value = _convert(getattr(defaults, key), raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(source, _line(value_node), dotted, str(exc)) from exc
        check = _CHECKS.get((name, key))
        problem = check(value) if check else None
        if problem:
            raise ConfigError(source, _line(value_node), dotted, problem)
        values[key] = value
    return cls(**values)


def _lines(source: str, node: yaml.Node, env: Mapping[str, str], secrets: bool
           ) -> tuple[Line, ...]:
    """``transfer.lines``: a list of mappings, each a :class:`Line`; ``token_env`` names
    the environment variable of its API token (required to be set with ``secrets``)."""
    if not isinstance(node, yaml.SequenceNode) or len(node.value) > MAX_LINES:
        raise ConfigError(source, _line(node), "transfer.lines",
                          f"must be a list of at most {MAX_LINES} lines (name, label, key, "
                          "target)")
    lines: list[Line] = []
    for index, entry in enumerate(node.value):
        dotted = f"transfer.lines[{index}]"
        if not isinstance(entry, yaml.MappingNode):
            raise ConfigError(source, _line(entry), dotted, "must be a mapping")
        _no_twice(source, dotted, entry.value)
        values: dict[str, Any] = {}
        for key_node, value_node in entry.value:
            key = str(key_node.value)
            if key == "token_env":
                values["token"] = _line_token(source, value_node, f"{dotted}.token_env",
                                              env, secrets)
                continue
            if key == "token":
                raise ConfigError(source, _line(key_node), f"{dotted}.token",
                                  "secrets are not kept in the file: use token_env: VARIABLE")
            if key not in _LINE_CHECKS:
                raise ConfigError(source, _line(key_node), f"{dotted}.{key}",
                                  f"unknown key (known: {', '.join(_LINE_CHECKS)})")
            value = value_node.value
            if not isinstance(value_node, yaml.ScalarNode) or not isinstance(value, str):
                raise ConfigError(source, _line(value_node), f"{dotted}.{key}",
                                  "must be a string")
            problem = _LINE_CHECKS[key](value)
            if problem:
                raise ConfigError(source, _line(value_node), f"{dotted}.{key}", problem)
            values[key] = _LINE_NUMBERS.get(key, str)(value)
        missing = [k for k in ("name", "label", "key", "target") if k not in values]
        if missing:
            raise ConfigError(source, _line(entry), dotted, f"{', '.join(missing)} missing")
        lines.append(Line(**values))
    names = [line.name for line in lines]
    if len(names) != len(set(names)):
        raise ConfigError(source, _line(node), "transfer.lines", "a line is given twice")
    return tuple(lines)


MAX_REASON = 40  # characters of a decline reason
_WIDE_SPACES = "\u3000\u00a0"  # the full-width space of Chinese text, a no-break space


def _decline_reasons(source: str, node: yaml.Node) -> tuple[tuple[str, str], ...]:
    """``transfer.decline_reasons``: a mapping of a one-digit code to its reason, at most
    10 (the codes 0 to 9), each reason text (not what YAML reads as null, a number or a
    boolean) of 1 to 40 printable characters; full-width spaces are fine."""
    dotted = "transfer.decline_reasons"
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(source, _line(node), dotted,
                          'must be a mapping of a code to its reason ("1": 属公安职责)')
    _no_twice(source, dotted, node.value)
    out: list[tuple[str, str]] = []
    for key_node, value_node in node.value:
        code, reason = key_node.value, value_node.value
        if not isinstance(key_node, yaml.ScalarNode) or not re.fullmatch(r"[0-9]", str(code)):
            raise ConfigError(source, _line(key_node), f"{dotted}.{str(code)[:20]}",
                              "a code must be one digit, 0 to 9")
        if not isinstance(value_node, yaml.ScalarNode) or not isinstance(reason, str) or \
                value_node.tag != "tag:yaml.org,2002:str" or \
                not 0 < len(reason.strip()) <= MAX_REASON or \
                not all(c.isprintable() or c in _WIDE_SPACES for c in reason):
            raise ConfigError(source, _line(value_node), f"{dotted}.{code}",
                              f"must be text of 1 to {MAX_REASON} printable characters "
                              "(quoted, if YAML would read it as null, yes/no or a number)")
        out.append((str(code), reason.strip()))
    return tuple(out)


def _line_token(source: str, node: yaml.Node, dotted: str, env: Mapping[str, str],
                secrets: bool) -> str:
    var = node.value
    if not isinstance(var, str) or (secrets and var not in env):
        raise ConfigError(source, _line(node), dotted,
                          f"environment variable {str(var)[:40]!r} is not set")
    return env.get(var, "")


def _check_keys(source: str, transfer: TransferConfig) -> None:
    """Every key is one key: none given twice, none the start of another (Asterisk would
    act on the shorter one before the longer could be typed)."""
    keys = {"transfer.onekey": transfer.onekey, "transfer.consult_key": transfer.consult_key,
            "transfer.emergency_key": transfer.emergency_key,
            "transfer.decline_key": transfer.decline_key,
            **{f"transfer.lines[{line.name}].key": line.key for line in transfer.lines}}
    for name, key in keys.items():
        for other_name, other in keys.items():
            if name != other_name and other.startswith(key):
                raise ConfigError(source, None, other_name,
                                  f"{other} {'is' if other == key else 'begins with'} "
                                  f"{name} ({key}): each key must be told apart")


def load_config_file(path: Path, environ: Mapping[str, str] | None = None,
                     secrets: bool = True, process_mode: bool = False) -> Config:
    """Load a file; a relative ``transfer.categories`` is taken from the file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), None, "(file)", f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(str(path), line, "(file)",
                          f"not UTF-8 (byte {exc.start}: {exc.object[exc.start:exc.end]!r})"
                          ) from exc
    config = load_config(text, str(path), environ, secrets, process_mode)
    categories = path.parent / config.transfer.categories
    return replace(config, transfer=replace(config.transfer, categories=str(categories)))
