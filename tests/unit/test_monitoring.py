"""The shipped alert rules and Grafana dashboard: promtool checks the rules and runs
their unit tests (each alert fires when it should, and not before), and every metric
they name is one the gateway exposes."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from gateway.metrics import TransferMeter

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config/prometheus/linkgw-alerts.yml"
RULE_TESTS = REPO / "config/prometheus/linkgw-alerts.test.yml"
DASHBOARD = REPO / "config/grafana/linkgw-dashboard.json"
CACHE = Path(os.environ.get("LINKGW_CACHE") or Path.home() / ".cache/linkgw")


def promtool(*args: str) -> str:
    tool = os.environ.get("LINKGW_PROMTOOL") or str(CACHE / "prometheus-deb/usr/bin/promtool")
    assert Path(tool).exists(), f"{tool}: make setup unpacks Debian's promtool there"
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120,
                          cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exposed() -> set[str]:
    """Every sample name /metrics can carry: the service's figures (a counter gets
    _total) and the transfer meter's counter and histogram."""
    names = set()
    tree = ast.parse((REPO / "gateway/service.py").read_text(encoding="utf-8"))
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Figure":
            name, kind = call.args[0], call.args[2]
            assert isinstance(name, ast.Constant) and isinstance(kind, ast.Constant)
            names.add(str(name.value) + ("_total" if kind.value == "counter" else ""))
    registry = CollectorRegistry()
    meter = TransferMeter(registry)
    meter.ended("110->12345", "handed_off", False)
    meter.answered("110->12345", 3.0)
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names | {"up"}


def test_promtool_checks_the_rules_and_their_tests_pass() -> None:
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", RULES.name)
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name)


def test_every_alert_has_a_unit_test() -> None:
    alerts = set(re.findall(r"(?m)^\s*- alert: (\w+)$", RULES.read_text(encoding="utf-8")))
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    assert len(alerts) == 8 and alerts == tested


def test_the_rules_name_only_metrics_the_gateway_exposes() -> None:
    text = RULES.read_text(encoding="utf-8")
    used = set(re.findall(r"\blinkgw_[a-z0-9_]+\b", text)) - {"linkgw_"}
    assert used and used <= exposed(), sorted(used - exposed())


def test_the_dashboards_queries_name_only_metrics_the_gateway_exposes() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\blinkgw_[a-z0-9_]+\b", e)}
    assert used <= exposed(), sorted(used - exposed())
    assert {"linkgw_ami_connected", "linkgw_redis_up", "linkgw_workorders_overdue",
            "linkgw_key_to_answer_seconds_bucket"} <= used
    assert all(p["title"] and p["gridPos"]["w"] > 0 for p in dashboard["panels"])
