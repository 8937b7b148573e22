"""Config: the shipped file loads; every mistake is an error with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, load_config, load_config_file
from gateway.dialplan import render

REPO = Path(__file__).resolve().parents[2]
ENV = {"LINKGW_AMI_SECRET": "not-a-real-secret", "LINKGW_API_TOKEN": "not-a-real-token"}


def test_shipped_config_loads() -> None:
    config = load_config_file(REPO / "config/gateway.yaml", ENV)
    assert config.ami.secret == "not-a-real-secret"
    assert config.transfer.onekey == "*1"
    assert config.transfer.ring_timeout == 15.0
    assert config.http.token == "not-a-real-token"
    assert config.redis.sentinels == () and config.redis.spool_dir.endswith("spool")


@pytest.mark.parametrize("text,line,key,message", [
    ("ami:\n  username: x\n  secret: hunter2\n", 3, "ami.secret", "secret_env"),
    ("ami:\n  secret_env: NOPE\n", 2, "ami.secret_env", "'NOPE' is not set"),
    ("redis:\n  username: linkgw-gateway\n  password: 张三\r\n", 3, "redis.password",
     "password_env"),
    ("redis:\n  password_env: NOPE\n", 2, "redis.password_env", "'NOPE' is not set"),
    ("tickets:\n  time_zone: \"Asia/上海\\u2028\"\n", 2, "tickets.time_zone",
     "unknown time zone"),
    ("tickets:\n  time_zone: ../../etc/passwd\n", 2, "tickets.time_zone",
     "unknown time zone"),
    ("transfer:\n  ring_timout: 15\n", 2, "transfer.ring_timout", "unknown key"),
    ("transfer:\n  ring_timeout: soon\n", 2, "transfer.ring_timeout", "must be a number"),
    ("transfer:\n  ring_timeout: 0\n", 2, "transfer.ring_timeout", "greater than 0"),
    ("transfer:\n  code_timeout: -1\n", 2, "transfer.code_timeout", "greater than 0"),
    ("transfer:\n\n  onekey: '*x'\n", 3, "transfer.onekey", "DTMF"),
    ("fastagi:\n  allow: 127.0.0.1\n", 2, "fastagi.allow", "list of strings"),
    ("fastagi:\n  max_sessions: 2.5\n", 2, "fastagi.max_sessions", "whole number"),
    ("log:\n  format: xml\n", 2, "log.format", "one of json, console"),
    ("redis: [1, 2]\n", 1, "redis", "must be a mapping"),
    ("radis:\n  url: x\n", 1, "radis", "unknown section"),
    ("ami:\n  username: [\n", 3, "(file)", "not valid YAML"),
    ("fastagi:\n  allow: []\n", 2, "fastagi.allow", "would let anyone in"),
    ("transfer:\n  notice_seconds: -1\n", 2, "transfer.notice_seconds", "0 to 60"),
    ("redis:\n  retry_delay: 0\n", 2, "redis.retry_delay", "greater than 0"),
    ("transfer:\n  retry_delay: -1\n", 2, "transfer.retry_delay", "greater than 0"),
    ("transfer:\n  require_code: always\n", 2, "transfer.require_code",
     "one of no, flag, refuse"),
    ("tickets:\n  shifts: [\"20:00\", \"08:00\"]\n", 2, "tickets.shifts", "in order"),
    ("tickets:\n  shifts: [\"24:00\"]\n", 2, "tickets.shifts", "HH:MM"),
    ("tickets:\n  shifts: []\n", 2, "tickets.shifts", "1 to 6"),
    ("tickets:\n  shifts: [\"08:00\u2028\"]\n", 2, "tickets.shifts", "HH:MM"),
    ("transfer:\n  response_deadline: 0\n", 2, "transfer.response_deadline",
     "greater than 0"),
    ("redis:\n  events_maxlen: -5\n", 2, "redis.events_maxlen", "0 or more"),
    ("redis:\n  min_replicas: -1\n", 2, "redis.min_replicas", "0 or more"),
    ("log:\n  level: info\n  format: !!python/object/apply:os.system ['true']\n", 3,
     "log.format", "not a plain value"),
    ("transfer:\n  hold_music_dir: \"moh\\nmode=custom\"\n", 2, "transfer.hold_music_dir",
     "folder name"),
    ("ami:\n  username: a\n  username: b\n", 3, "ami.username",
     "given twice (first on line 2)"),
    ("log:\n  level: info\nami:\n  auth: md5\nlog:\n  format: json\n", 5, "log",
     "given twice (first on line 1)"),
])
def test_errors_name_file_line_and_key(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text, "site.yaml", ENV)
    assert (info.value.line, info.value.key) == (line, key)
    assert str(info.value).startswith(f"site.yaml:{line}: {key}: ")
    assert message in str(info.value)


def test_require_code_refuse_without_a_code_window_is_refused() -> None:
    with pytest.raises(ConfigError, match="would refuse every key"):
        load_config("transfer:\n  require_code: refuse\n  code_digits: 0\n", "site.yaml",
                    ENV)


def test_require_code_with_a_default_code_is_refused() -> None:
    """A default code fills in for a missing one: 'refuse' or 'flag' would never happen."""
    with pytest.raises(ConfigError) as info:
        load_config("transfer:\n  require_code: refuse\n  default_code: \"1\"\n",
                    "site.yaml", ENV)
    assert str(info.value) == ("site.yaml: transfer.require_code: refuse never happens with "
                               "a default_code (1): a key without a code takes it")


def test_empty_file_needs_an_api_token() -> None:
    """The API listens by default, and never without a token."""
    ami = "ami:\n  secret_env: LINKGW_AMI_SECRET\n"
    with pytest.raises(ConfigError, match=r"ami\.secret_env: the AMI secret is empty"):
        load_config("", "x.yaml", ENV)
    with pytest.raises(ConfigError, match=r"http\.token_env: the HTTP API needs a token"):
        load_config(ami, "x.yaml", ENV)
    assert load_config(ami + "http:\n  listen: \"\"\n", "x.yaml", ENV).http.token == ""


def test_cli_loads_without_secrets() -> None:
    config = load_config_file(REPO / "config/gateway.yaml", {}, secrets=False)
    assert (config.ami.secret, config.http.token) == ("", "")
    assert config.tickets.pattern == r"^\d{8,20}$"


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")


def test_committed_dialplan_is_what_the_default_config_renders() -> None:
    """dialplan/linkgw_globals.conf and linkgw_features.conf never drift from the code."""
    for name, text in render(Config()).items():
        assert (REPO / "dialplan" / name).read_text(encoding="utf-8") == text


@pytest.mark.parametrize("environ,key,message", [
    ({"LINKGW_AMI_SECRET": "", "LINKGW_API_TOKEN": "x" * 16}, "ami.secret_env",
     "the AMI secret is empty"),
    ({"LINKGW_AMI_SECRET": "s", "LINKGW_API_TOKEN": "short"}, "http.token_env",
     "at least 16 characters"),
    ({"LINKGW_AMI_SECRET": "s", "LINKGW_API_TOKEN": "x" * 16, "T12345": "short"},
     "http.token_12345_env", "at least 16 characters"),
    ({"LINKGW_AMI_SECRET": "s", "LINKGW_API_TOKEN": "x" * 16, "T12345": "x" * 16},
     "http", "two roles have the same token"),
])
def test_weak_secrets_are_refused(environ: dict[str, str], key: str, message: str) -> None:
    text = "ami:\n  secret_env: LINKGW_AMI_SECRET\nhttp:\n  token_env: LINKGW_API_TOKEN\n"
    if "T12345" in environ:
        text += "  token_12345_env: T12345\n"
    with pytest.raises(ConfigError) as info:
        load_config(text, "site.yaml", environ)
    assert info.value.key == key and message in str(info.value)


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_bytes("ami:\n  username: 张\n".encode() + b"log:\n  level: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(path, ENV)
    assert (info.value.line, info.value.key) == (4, "(file)")
    assert "not UTF-8" in str(info.value)


def test_an_empty_allow_list_lets_nobody_in() -> None:
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock

    from gateway.agi.server import FastAgiFactory
    from gateway.lab.fakes import null_log

    factory = FastAgiFactory({}, clock=Clock(), log=null_log(), allow=frozenset())
    assert factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000)) is None
    assert factory.counters.refused_address == 1


PUSH_ENV = ENV | {"LINKGW_PUSH_SECRET": "shared-with-12345"}  # 17 characters
BASE = 'ami:\n  secret_env: LINKGW_AMI_SECRET\nhttp:\n  listen: ""\n'



@pytest.mark.parametrize("push,message", [
    ('  url: "https://12345.example/in"\n', "push.secret_env: the push needs a secret"),
    ('  url: "http://12345.example/in"\n  secret_env: LINKGW_PUSH_SECRET\n',
     "push.url: plain http:// to another host"),
    ('  url: "https://12345.example/in"\n  secret_env: LINKGW_PUSH_SECRET\n'
     '  ca_file: /nonexistent/ca.pem\n', "push.ca_file: no such file"),
    ('  url: "ftp://12345.example/in"\n', "push.url: must be an http(s) URL"),
    ('  url: "https://12345.example/in\\r\\nX: y"\n', "push.url: must be an http(s) URL"),
    ('  feed: "119"\n', "push.feed: no line 119: must be 12345, 110 or a further line's"),
    ('  feed: "12345\\n"\n', "push.feed: must be 12345, 110 or a further line's number"),
    # what a URL parser reads as another host must not pass as loopback
    ('  url: "http://127.0.0.1:x@evil.example/"\n  secret_env: LINKGW_PUSH_SECRET\n',
     "push.url: must name a host, without user:password@"),
    ('  url: "http://localhost:80@evil.example/"\n  secret_env: LINKGW_PUSH_SECRET\n',
     "push.url: must name a host, without user:password@"),
    ('  url: "http://127.0.0.1.evil.example/"\n  secret_env: LINKGW_PUSH_SECRET\n',
     "push.url: plain http:// to another host"),
    ('  url: "http://[::1].evil.example/"\n  secret_env: LINKGW_PUSH_SECRET\n',
     "push.url: not a URL"),
])
def test_a_push_that_could_not_be_trusted_is_refused(push: str, message: str) -> None:
    text = BASE + "push:\n" + push
    with pytest.raises(ConfigError, match="push") as err:
        load_config(text, "gw.yaml", ENV | ({"LINKGW_PUSH_SECRET": "shared-with-12345"}
                                            if "secret_env" in push else {}))
    assert message in str(err.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/in", "http://localhost/in",
                                 "http://[::1]:8080/in"])
def test_plain_http_is_fine_on_loopback(url: str) -> None:
    text = BASE + f'push:\n  url: "{url}"\n  secret_env: LINKGW_PUSH_SECRET\n'
    assert load_config(text, "gw.yaml", PUSH_ENV).push.url == url


def test_an_undelivered_push_is_never_trimmed() -> None:
    """With the push on, retention keeps what its group has not acknowledged; off, the
    group (which then never exists) does not hold the feed back for ever."""
    from gateway.config import retention_groups

    off = load_config(BASE, "gw.yaml", ENV)
    # literals: retention.groups as a site's config spells them ("<stream>/<group>")
    assert "feed:12345/push" not in retention_groups(off)
    on = load_config(BASE + 'push:\n  url: "https://x.example/in"\n'
                     '  secret_env: LINKGW_PUSH_SECRET\n', "gw.yaml", PUSH_ENV)
    assert retention_groups(on) == ("feed:12345/12345", "feed:110/110",
                                    "tickets:in/linkgw", "feed:12345/push")


def test_a_short_push_secret_is_refused() -> None:
    text = BASE + 'push:\n  url: "https://x.example/in"\n  secret_env: LINKGW_PUSH_SECRET\n'
    with pytest.raises(ConfigError, match="push secret is too short"):
        load_config(text, "gw.yaml", ENV | {"LINKGW_PUSH_SECRET": "short"})


def test_process_mode_needs_only_the_ami_secret_and_redis_password() -> None:
    """A site's one config file names the API tokens, the push secret and the chain key
    too; a process-mode AGI program (Asterisk's environment) holds none of them and
    still starts. The gateway service, with the same file, still refuses to."""
    text = ('ami:\n  secret_env: LINKGW_AMI_SECRET\n'
            'redis:\n  password_env: LINKGW_REDIS_PASSWORD\n'
            'http:\n  token_env: LINKGW_API_TOKEN\n'
            'push:\n  url: "https://12345.example/in"\n  secret_env: LINKGW_PUSH_SECRET\n'
            'retention:\n  chain_key_env: LINKGW_CHAIN_KEY\n')
    asterisk_env = {"LINKGW_AMI_SECRET": "ami", "LINKGW_REDIS_PASSWORD": "redis"}
    config = load_config(text, "gw.yaml", asterisk_env, process_mode=True)
    assert (config.ami.secret, config.redis.password) == ("ami", "redis")
    assert (config.push.secret, config.retention.chain_key, config.http.token) == ("", "", "")
    with pytest.raises(ConfigError, match="LINKGW_API_TOKEN"):
        load_config(text, "gw.yaml", asterisk_env)
    with pytest.raises(ConfigError, match="LINKGW_REDIS_PASSWORD"):
        load_config(text, "gw.yaml", {"LINKGW_AMI_SECRET": "ami"}, process_mode=True)


def test_the_one_keys_hold_begins_with_the_notice() -> None:
    """The music on hold class of the one key: the notice, then the site's music; the key
    uses it, the others keep the site's class; 0 seconds plays the notice at the join."""
    config = load_config("transfer:\n  notice_prompt: zh/linkgw-notice\n"
                         "  hold_music_dir: moh-zh\n", "site.yaml", secrets=False)
    files = render(config)
    assert files["linkgw_musiconhold.conf"].split("\n")[-6:] == [
        "[linkgw_notice]", "mode=files", "directory=moh-zh", "sort=alpha",
        "announcement=zh/linkgw-notice", ""]
    assert "LINKGW_NOTICE_SECONDS=3.5\n" in files["linkgw_globals.conf"]
    features = files["linkgw_features.conf"]
    assert "Gosub(linkgw-onekey,s,1(transfer)),linkgw_notice\n" in features
    assert "Gosub(linkgw-onekey,s,1(consult)),default\n" in features
    at_join = render(load_config("transfer:\n  notice_seconds: 0\n", "site.yaml",
                                 secrets=False))
    assert "Gosub(linkgw-onekey,s,1(transfer)),default\n" in at_join["linkgw_features.conf"]
    assert "LINKGW_NOTICE_SECONDS=0\n" in at_join["linkgw_globals.conf"]


LINE_122 = ('transfer:\n  lines:\n    - name: "122"\n      label: 交警\n      key: "*3"\n'
            '      target: "PJSIP/122@trunk-122"\n')


def test_a_further_line_is_config_and_the_dialplan_renders_its_key_notice_and_fallback(
        ) -> None:
    config = load_config(LINE_122 + '      notice_prompt: linkgw/zh/notice_122\n',
                         secrets=False)
    line = config.transfer.line("122")
    assert line is not None and (line.label, line.key, line.alternate) == ("交警", "*3", "")
    assert config.transfer.line("12345") is None
    files = render(config)
    assert files["linkgw_features.conf"].endswith(
        "linkgw_line_122 => *3,self,Gosub(linkgw-onekey,s,1(transfer,122)),"
        "linkgw_notice_122\n")
    assert "LINKGW_FEATURES_110=linkgw_onekey#linkgw_consult#linkgw_emergency#" \
        "linkgw_line_122\nLINKGW_FALLBACK_122=PJSIP/122@trunk-122\n" \
        in files["linkgw_globals.conf"]
    assert files["linkgw_musiconhold.conf"].endswith(
        "[linkgw_notice_122]\nmode=files\ndirectory=moh\nsort=alpha\n"
        "announcement=linkgw/zh/notice_122\n")


@pytest.mark.parametrize("change,key,message", [
    (('"122"', '"110"'), "transfer.lines[0].name", "neither 110 nor 12345"),
    (('"122"', '"12a"'), "transfer.lines[0].name", "3 to 6 digits"),
    (('"*3"', '"*1"'), "transfer.lines[122].key", "is transfer.onekey"),
    (('"*3"', '"*12"'), "transfer.lines[122].key", "begins with transfer.onekey"),
    (("交警", '"交警\\r\\nX"'), "transfer.lines[0].label", "printable"),
    (("交警", '"交警\\u2028"'), "transfer.lines[0].label", "printable"),
    (("PJSIP/122@trunk-122", "PJSIP/122\\r\\nAction: Hangup"), "transfer.lines[0].target",
     "dial string"),
    (('      key: "*3"\n', ""), "transfer.lines[0]", "key missing"),
    (('      key: "*3"\n', '      key: "*3"\n      keys: "*4"\n'), "transfer.lines[0].keys",
     "unknown key"),
    (('      key: "*3"\n', '      key: "*3"\n      key: "*4"\n'), "transfer.lines[0].key",
     "given twice"),
    (('      key: "*3"\n', '      key: [1]\n'), "transfer.lines[0].key", "must be a string"),
    (('      key: "*3"\n', '      key: "*3"\n      feedback_days: "0"\n'),
     "transfer.lines[0].feedback_days", "1 to 60 working days"),
    (('      key: "*3"\n', '      key: "*3"\n      feedback_days: "\u0663"\n'),
     "transfer.lines[0].feedback_days", "1 to 60 working days"),
    (('      key: "*3"\n', '      key: "*3"\n      feedback_hours: "1e3"\n'),
     "transfer.lines[0].feedback_hours", "a number of hours"),
])
def test_a_broken_line_is_a_config_error_naming_it(change: tuple[str, str], key: str,
                                                   message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(LINE_122.replace(*change), "site.yaml", secrets=False)
    assert info.value.key == key and message in str(info.value)


def test_a_line_given_twice_is_a_config_error() -> None:
    twice = LINE_122 + LINE_122.split("lines:\n", 1)[1].replace('"*3"', '"*4"')
    with pytest.raises(ConfigError, match="a line is given twice"):
        load_config(twice, "site.yaml", secrets=False)


def test_a_further_lines_feed_can_be_pushed() -> None:
    config = load_config(LINE_122 + 'push:\n  feed: "122"\n', secrets=False)
    assert config.push.feed == "122"


def test_110_and_12345_are_lines_too_made_of_the_transfer_section() -> None:
    """What a key hands to, as one Line value for every line: 12345 from the one key at
    110, 110 from the one key at 12345 (the reverse_ values), a further line's own."""
    transfer = load_config(LINE_122.replace('"PJSIP/122@trunk-122"\n',
                                            '"PJSIP/122@trunk-122"\n      '
                                            'display_prefix: 110转交警\n'),
                           secrets=False).transfer
    twelve, hundred_ten = transfer.destination("110"), transfer.destination("12345")
    assert (transfer.lines[0].feedback_days, transfer.lines[0].feedback_hours) == (0, 0.0)
    assert (twelve.name, twelve.key, twelve.target, twelve.display_prefix) == \
        ("12345", "*1", "PJSIP/12345", "110转")
    assert (hundred_ten.name, hundred_ten.target, hundred_ten.display_prefix) == \
        ("110", "PJSIP/seat2", "12345转")
    traffic = transfer.destination("110", "122")
    assert (traffic.key, traffic.display_prefix) == ("*3", "110转交警")
    assert transfer.destination("12345", "122") == hundred_ten  # 12345 has no further line
    assert transfer.destination("110", "119") == twelve  # no such line: the other one


@pytest.mark.parametrize("environ,message", [
    ({}, "transfer.lines[0].token_env: environment variable 'T122' is not set"),
    ({"T122": "short"}, "transfer.lines[122].token_env: the API token is too short"),
    ({"T122": "x" * 16}, "http: two roles have the same token"),
])
def test_a_lines_api_token_comes_from_the_environment_and_is_checked(
        environ: dict[str, str], message: str) -> None:
    text = ("ami:\n  secret_env: S\nhttp:\n  token_env: A\n" + LINE_122 +
            "      token_env: T122\n")
    with pytest.raises(ConfigError) as info:
        load_config(text, "site.yaml", {"S": "s", "A": "x" * 16} | environ)
    assert message in str(info.value)


def test_a_lines_api_token_is_read_and_never_written_in_the_file() -> None:
    text = "ami:\n  secret_env: S\nhttp:\n  token_env: A\n" + LINE_122
    config = load_config(text + "      token_env: T122\n", "site.yaml",
                         {"S": "s", "A": "x" * 16, "T122": "y" * 16})
    line = config.transfer.line("122")
    assert line is not None and line.token == "y" * 16 and "y" * 16 not in repr(line)
    with pytest.raises(ConfigError, match="secrets are not kept in the file"):
        load_config(text + "      token: abc\n", "site.yaml", {"S": "s", "A": "x" * 16})


def test_a_lines_feedback_term_is_read_as_a_number() -> None:
    config = load_config(LINE_122 + '      feedback_hours: 8\n      feedback_days: 2\n',
                         secrets=False)
    line = config.transfer.line("122")
    assert line is not None and (line.feedback_days, line.feedback_hours) == (2, 8.0)


def test_retention_never_trims_what_a_further_lines_push_has_not_delivered() -> None:
    from gateway.config import retention_groups

    config = load_config(LINE_122, secrets=False)
    assert retention_groups(config) == ("feed:12345/12345", "feed:110/110",
                                        "tickets:in/linkgw", "feed:122/push")


DECLINE = 'transfer:\n  decline_reasons:\n    "1": 属公安职责\n    "9": 其他原因\n'


def test_decline_reasons_are_config_and_the_globals_carry_the_key_and_codes() -> None:
    """The consult agent's menu is made on its channel from two globals: the decline key
    and the codes; the reasons' texts stay with the gateway."""
    config = load_config(DECLINE + '  decline_key: "#8"\n', "site.yaml", secrets=False)
    assert config.transfer.decline_reasons == (("1", "属公安职责"), ("9", "其他原因"))
    assert (config.transfer.decline_reason("9"), config.transfer.decline_reason("2")) == \
        ("其他原因", None)
    assert "LINKGW_DECLINE_KEY=#8\nLINKGW_DECLINE_CODES=19\n" in \
        render(config)["linkgw_globals.conf"]
    none = load_config("transfer:\n  decline_reasons: {}\n", "site.yaml", secrets=False)
    assert "LINKGW_DECLINE_CODES=\n" in render(none)["linkgw_globals.conf"]  # no keys
    spaced = load_config(DECLINE.replace("其他原因", "其他\u3000原因"), "site.yaml",
                         secrets=False)
    assert spaced.transfer.decline_reason("9") == "其他\u3000原因"


@pytest.mark.parametrize("change,key,message", [
    (('"9"', '"10"'), "transfer.decline_reasons.10", "one digit"),
    (('"9"', '"٩"'), "transfer.decline_reasons.٩", "one digit"),
    (('"9"', '"a"'), "transfer.decline_reasons.a", "one digit"),
    (('"9"', '"1"'), "transfer.decline_reasons.1", "given twice"),
    (("其他原因", '"其他\\r\\n*99=dialplan_exec(x,1,1)"'), "transfer.decline_reasons.9",
     "printable"),
    (("其他原因", '"其他\\u2028原因"'), "transfer.decline_reasons.9", "printable"),
    (("其他原因", '"其他\\x85原因"'), "transfer.decline_reasons.9", "printable"),
    (("其他原因", '"' + "长" * 41 + '"'), "transfer.decline_reasons.9", "1 to 40"),
    (("其他原因", '""'), "transfer.decline_reasons.9", "1 to 40"),
    (("其他原因", "[a, b]"), "transfer.decline_reasons.9", "printable"),
    (("其他原因", "~"), "transfer.decline_reasons.9", "printable"),
    (("其他原因", "12"), "transfer.decline_reasons.9", "printable"),
    (("其他原因", "yes"), "transfer.decline_reasons.9", "printable"),
    (('    "1": 属公安职责\n    "9": 其他原因\n', "    - 属公安职责\n"),
     "transfer.decline_reasons", "mapping of a code"),
])
def test_a_broken_decline_reason_is_a_config_error_naming_it(change: tuple[str, str], key: str,
                                                             message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DECLINE.replace(*change), "site.yaml", secrets=False)
    assert info.value.key == key and message in str(info.value)


@pytest.mark.parametrize("key,message", [
    ('"*2"', "*2 is transfer.consult_key"), ('"*"', "begins with transfer.decline_key"),
    ('"*9\\r\\n"', "must be 1 to 8 DTMF digits"), ('"*９"', "must be 1 to 8 DTMF digits")])
def test_the_decline_key_is_a_key_of_its_own(key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        load_config(f"transfer:\n  decline_key: {key}\n", "site.yaml", secrets=False)
