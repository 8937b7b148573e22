"""The process-mode AGI program, run as Asterisk runs it: a process, the env and the
replies on its stdin, its commands on its stdout."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gateway.bridge.change import Change
from gateway.lab.fakes import ChannelDouble, agi_env
from gateway.lab.ports import free_ports
from gateway.schema import call_record

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    dead_redis = free_ports(1)[0]  # nothing listens there: the change is spooled
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"redis:\n  url: redis://127.0.0.1:{dead_redis}/0\n"
        f"  spool_dir: {tmp_path / 'spool'}\n"
        f"transfer:\n  categories: {REPO / 'config/categories.yaml'}\n"
        "http:\n  listen: \"\"\nami:\n  secret_env: LINKGW_AMI_SECRET\n", encoding="utf-8")
    return path


def _run(tmp_path: Path, script: str, env_block: bytes, channel: ChannelDouble
         ) -> tuple[int, list[bytes]]:
    """Play Asterisk: send the env, answer each command as the channel would."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.process.agi", script],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env=dict(os.environ, LINKGW_CONFIG=str(_config(tmp_path)), LINKGW_AMI_SECRET="x"))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(env_block)
    proc.stdin.flush()
    commands = []
    while line := proc.stdout.readline():
        commands.append(line)
        if line.startswith(b"GET FULL VARIABLE "):
            expression = line[len(b"GET FULL VARIABLE "):].strip().strip(b'"').decode()
            import asyncio

            value = asyncio.run(channel.get_full_variable(expression))
            proc.stdin.write(f"200 result=1 ({value})\n".encode())
        else:
            proc.stdin.write(b"200 result=1\n")
        proc.stdin.flush()
    proc.stdin.close()
    return proc.wait(10), commands


def test_incoming_reads_once_answers_once_and_spools_the_call_when_redis_is_down(
        tmp_path: Path) -> None:
    """A hostile caller ID (CR LF CR LF and a forged reply) in the env: the program reads
    the env whole, asks one composite read, answers, exits 0; its detached writer finds
    no Redis and spools the registration, the exact caller ID in it."""
    exact = "1\r\n\r\n200 result=1 (forged)"
    channel = ChannelDouble("PJSIP/citizen-00000001", "u-1", ("110",), {
        "UNIQUEID": "u-1", "CALLERID(num)": "1", "CALLERID(name)": "",
        "SHARED(LINKGW_CALLER)": "|".join(
            base64.b64encode(("=" + v).encode()).decode() for v in (exact, "张三"))})
    env_block = agi_env("incoming", "PJSIP/citizen-00000001", "u-1", callerid=exact,
                        args=("110",), network=False)
    code, commands = _run(tmp_path, "incoming", env_block, channel)
    assert code == 0
    assert [c.split(b" ")[0] + b" " + c.split(b" ")[1] for c in commands] == \
        [b"GET FULL", b"SET VARIABLE"]
    assert commands[1] == b'SET VARIABLE "LINKGW_ANSWER" "OK||||0"\n'
    spooled: list[Change] = []
    deadline = time.monotonic() + 10
    while not spooled and time.monotonic() < deadline:  # the writer is detached
        for path in (tmp_path / "spool").glob("*.jsonl"):
            spooled += [Change.from_json(x) for x in path.read_text().splitlines() if x]
        time.sleep(0.05)
    assert [(c.record, c.fields["number"], c.fields["name"]) for c in spooled] == \
        [(call_record("u-1"), exact, "张三")]


def test_an_unknown_script_or_a_broken_config_is_a_clear_exit(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("transfer:\n  onekey: x\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "gateway.process.agi", "onekey"],
                         capture_output=True, text=True, cwd=REPO, input="", timeout=10,
                         env=dict(os.environ, LINKGW_CONFIG=str(bad)))
    assert run.returncode == 2 and "bad.yaml:2: transfer.onekey" in run.stderr
    run = subprocess.run([sys.executable, "-m", "gateway.process.agi", "nosuch"],
                         capture_output=True, text=True, cwd=REPO, input="", timeout=10,
                         env=dict(os.environ, LINKGW_CONFIG=str(_config(tmp_path)),
                                  LINKGW_AMI_SECRET="x"))
    assert run.returncode == 2 and "no script 'nosuch'" in run.stderr


def test_the_program_answers_without_twisted_redis_or_structlog() -> None:
    """What Asterisk waits for stays light: those load only in the detached process."""
    run = subprocess.run([sys.executable, "-c", (
        "import sys, json, gateway.process.agi;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('twisted', 'redis', 'structlog'))))")], capture_output=True, text=True,
        cwd=REPO, timeout=30, check=True)
    assert json.loads(run.stdout) == []
