"""The fuzz run (``make fuzz``, 100,000 inputs a reader) kept working: a short seeded run
of every target, the retention names and the keeper's socket included, finds nothing."""

from __future__ import annotations

import pytest

from bench.fuzz_parsers import GENERATED, TARGETS, main


def test_a_short_fuzz_run_of_every_reader_finds_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz_parsers", "400"]) == 0
    said = capsys.readouterr().out
    names = [t[0] for t in TARGETS] + [g[0] for g in GENERATED]
    assert "retention names" in names and "keeper socket" in names
    for name in names:
        assert f"{name:<16} 400 inputs, no crash" in said, said
