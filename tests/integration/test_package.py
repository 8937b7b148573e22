"""The wheel is the product: built from this tree, installed into a fresh virtual
environment, it holds the gateway without the lab, the tests or the benchmarks, and its
``linkgw check-config`` accepts the shipped config."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"LINKGW_AMI_SECRET": "not-a-real-secret", "LINKGW_API_TOKEN": "x" * 32}


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def source_tree(into: Path) -> Path:
    """The files git would commit, copied: a ``build/`` left by an earlier build in the
    working tree would otherwise be packed as well."""
    listed = run("git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                 "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, into / name)
    return into


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = source_tree(tmp_path_factory.mktemp("source"))
    # built as pip builds it for a user: in an isolated environment with the
    # pyproject's build requirements (from pip's cache after the first run)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
        "-q", "-w", out, source)
    [built] = out.glob("linkgw-*.whl")
    return built


def test_the_wheel_holds_the_product_and_not_the_lab(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages = sorted({n.split("/")[1] for n in names if n.startswith("gateway/")
                       and n.count("/") >= 2})
    assert "lab" not in packages and not any(n.startswith("gateway/lab/") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    assert not any("fakes" in n for n in names)
    for product in ("agi", "ami", "bridge", "process", "push", "records", "systemd",
                    "transfer"):
        assert product in packages, product
    assert "gateway/__main__.py" in names


def test_the_installed_wheel_checks_the_shipped_config(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    said = run(env_dir / "bin" / "linkgw", "check-config", "--config",
               REPO / "config" / "gateway.yaml", env={"PATH": "/usr/bin:/bin", **SECRETS})
    assert said.startswith(f"{REPO / 'config' / 'gateway.yaml'}: ok (9 categories, ")
    lab = subprocess.run([python, "-c", "import gateway.lab"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert lab.returncode != 0 and "No module named 'gateway.lab'" in lab.stderr
