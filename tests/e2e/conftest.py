"""The end-to-end lab: real Asterisk, Redis, SIPp and the gateway process.

One lab serves the whole session. A lab that cannot start is a failure, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lab.ami_probe import AmiProbe
from gateway.lab.lab import Lab
from gateway.lab.process import LabError, wait_until

# The shared checks in helpers.py report their values like a test's own asserts.
pytest.register_assert_rewrite("tests.e2e.helpers")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir: Path = tmp_path_factory.mktemp("lab")
    with Lab(workdir) as running:
        yield running


@pytest.fixture(scope="session")
def process_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A lab without the gateway service: Asterisk runs the process-mode AGI program."""
    workdir: Path = tmp_path_factory.mktemp("process-lab")
    with Lab(workdir, agi="process") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_phones(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with no softphone running and leaves none behind."""
    yield
    for value in list(request.node.funcargs.values()):
        if isinstance(value, Lab):
            value.stop_phones()
            _hang_up_leftovers(value)


def _hang_up_leftovers(lab: Lab) -> None:
    """A test that failed half-way may leave a call up in Asterisk (either PBX): hang
    it up, so that one failure stays one failure instead of failing every later test of
    the lab."""
    for probe in (lab.probe, lab.peer_probe):
        if probe is not None:
            _hang_up_all(probe)


def _hang_up_all(probe: AmiProbe) -> None:
    try:
        probe.action("Hangup", {"Channel": "/^PJSIP//", "Cause": "16"})
        wait_until(lambda: not probe.action("CoreShowChannels")[1], 10, "no channel left")
    except LabError:
        pass  # no channel to hang up (AMI answers an error), or a lab already gone


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed lab test's report carries the tails of its lab's logs: CI runs from a
    clean clone whose temporary folders are gone by the time anyone reads the output."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Lab):
            report.sections.append((f"lab {value.name}: the logs' last lines",
                                    value.log_tails()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(params=["fastagi", "process"])
def any_lab(request: pytest.FixtureRequest) -> Lab:
    """The same test in both AGI modes: the FastAGI gateway service, and process mode
    (Asterisk runs the AGI programs; a detached follower owns each bridge)."""
    lab: Lab = request.getfixturevalue("lab" if request.param == "fastagi" else "process_lab")
    return lab


@pytest.fixture(scope="session")
def two_gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two gateway services on one Asterisk and one Redis; the dialplan asks the second
    when the first does not answer."""
    workdir: Path = tmp_path_factory.mktemp("two-gateways")
    with Lab(workdir, gateways=2) as running:
        yield running


@pytest.fixture(scope="session")
def sentinel_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The gateway on Redis Sentinel: a master, two replicas, three sentinels; a change
    counts as written once a replica has it."""
    workdir: Path = tmp_path_factory.mktemp("sentinel-lab")
    with Lab(workdir, sentinel=True) as running:
        yield running


@pytest.fixture(scope="session")
def two_pbx_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """110's Asterisk and 12345's own Asterisk joined by a SIP trunk; 12345's agents in
    a queue on their PBX (gateway/lab/peer.py)."""
    workdir: Path = tmp_path_factory.mktemp("two-pbx")
    with Lab(workdir, topology="two-pbx") as running:
        yield running


@pytest.fixture(scope="session")
def two_pbx_process_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The two-PBX lab with process-mode AGI on 110's Asterisk."""
    workdir: Path = tmp_path_factory.mktemp("two-pbx-process")
    with Lab(workdir, agi="process", topology="two-pbx") as running:
        yield running


@pytest.fixture(params=["fastagi", "process"])
def two_pbx(request: pytest.FixtureRequest) -> Lab:
    """The same two-PBX test in both AGI modes."""
    name = "two_pbx_lab" if request.param == "fastagi" else "two_pbx_process_lab"
    lab: Lab = request.getfixturevalue(name)
    return lab
