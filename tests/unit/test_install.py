"""linkgw install's pure parts (the include edit, the AMI user) and its plan against a
folder of files, byte for byte."""

from __future__ import annotations

import grp
import os
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.install.includes import MARK, include_line, setting, with_include
from gateway.install.manager import ManagerError, manager_user
from gateway.install.plan import InstallRefused, Sources, Write, apply, asterisk_files, outcome

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "dialplan/linkgw_manager.conf.example").read_text(encoding="utf-8")


def test_an_include_goes_right_under_its_section() -> None:
    text = "[general]\nstatic=yes\n[globals]\nA=1\n[default]\n"
    assert with_include(text, "linkgw/g.conf", "globals") == (
        f"[general]\nstatic=yes\n[globals]\n#include linkgw/g.conf  {MARK}\nA=1\n[default]\n")


def test_a_template_header_counts_as_the_section() -> None:
    text = "[applicationmap](+) ; ours\nx => *9,self,Noop\n"
    assert with_include(text, "f.conf", "applicationmap") == (
        f"[applicationmap](+) ; ours\n{include_line('f.conf')}\nx => *9,self,Noop\n")


def test_a_missing_section_is_added_with_the_include() -> None:
    assert with_include("[general]\n", "f.conf", "applicationmap") == (
        f"[general]\n[applicationmap]\n{include_line('f.conf')}\n")


def test_a_top_level_include_goes_at_the_end_even_without_a_last_newline() -> None:
    assert with_include("[a]\nx=1", "m.conf") == f"[a]\nx=1\n{include_line('m.conf')}\n"
    assert with_include("", "m.conf") == f"{include_line('m.conf')}\n"


@pytest.mark.parametrize("present", [
    f"#include linkgw/m.conf  {MARK}", "#include linkgw/m.conf", '#include "linkgw/m.conf"',
    "  #include linkgw/m.conf ; the administrator's own"])
def test_an_include_already_there_is_left_alone(present: str) -> None:
    assert with_include(f"[a]\n{present}\n", "linkgw/m.conf") is None


def test_a_commented_include_is_not_an_include() -> None:
    assert with_include(";#include linkgw/m.conf\n", "linkgw/m.conf") is not None


def test_a_setting_is_read_from_its_section_only() -> None:
    text = "[general]\nenabled = no ; off\n[user]\nenabled=yes\n[general]\nport=5038\n"
    assert setting(text, "general", "enabled") == "no"
    assert setting(text, "general", "port") == "5038"
    assert setting(text, "general", "bindaddr") is None


def test_the_ami_user_has_the_documented_classes_and_only_the_permitted_address() -> None:
    text = manager_user(EXAMPLE, "linkgw", "s3cr3t", "10.1.2.3")
    assert "[linkgw]\nsecret = s3cr3t\ndeny = 0.0.0.0/0.0.0.0\n" \
           "permit = 10.1.2.3/255.255.255.255\n" \
           "read = call,dtmf,user,system,originate,reporting\n" \
           "write = call,originate,system,reporting\n" in text


@pytest.mark.parametrize(("username", "secret", "permit", "says"), [
    ("link gw", "s", "127.0.0.1", "ami.username"),
    ("linkgw]\n[admin", "s", "127.0.0.1", "ami.username"),
    ("linkgw", "", "127.0.0.1", "must be set"),
    ("linkgw", "a\nread=all", "127.0.0.1", "on one line"),
    ("linkgw", "a\u2028b;c", "127.0.0.1", "on one line"),
    ("linkgw", " padded", "127.0.0.1", "spaces"),
    ("linkgw", "s", "everywhere", "not an address"),
])
def test_a_hostile_user_secret_or_address_is_refused(username: str, secret: str, permit: str,
                                                    says: str) -> None:
    with pytest.raises(ManagerError, match=says):
        manager_user(EXAMPLE, username, secret, permit)


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "asterisk.conf").write_text("[directories]\n")
    # a site's own comments in GBK: not UTF-8, kept byte for byte
    (folder / "extensions.conf").write_bytes(
        "[globals]\n; 本地注释\n[default]\n".encode("gbk"))
    (folder / "features.conf").write_text("[general]\n[applicationmap]\n")
    (folder / "manager.conf").write_text("[general]\nenabled = yes\n")
    (folder / "manager.conf").chmod(0o600)
    return folder


def plan(etc: Path) -> list[Write]:
    config = replace(Config(), ami=replace(Config().ami, secret="s3cr3t"))
    return asterisk_files(config, Sources.checkout(REPO), etc, "127.0.0.1")


def test_a_second_apply_writes_nothing_and_host_bytes_are_kept(etc: Path) -> None:
    first = apply(plan(etc))
    assert {d.action for d in first} == {"create", "update"}
    extensions = (etc / "extensions.conf").read_bytes()
    assert extensions == ("[globals]\n#include linkgw/linkgw_globals.conf  " + MARK + "\n"
                          "; 本地注释\n[default]\n#include linkgw/linkgw_extensions.conf  "
                          + MARK + "\n").encode("gbk")
    assert (etc / "manager.conf").stat().st_mode & 0o777 == 0o600
    assert (etc / "linkgw/linkgw_manager.conf").stat().st_mode & 0o777 == 0o640
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in etc.rglob("*") if p.is_file()}
    assert {d.action for d in apply(plan(etc))} == {"unchanged"}
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in etc.rglob("*") if p.is_file()}
    assert after == before


def test_a_changed_config_updates_only_linkgws_own_file(etc: Path) -> None:
    apply(plan(etc))
    (etc / "linkgw/linkgw_globals.conf").write_text("edited by hand\n")
    actions = {d.path.name: d.action for d in map(outcome, plan(etc))}
    assert actions["linkgw_globals.conf"] == "update"
    assert {a for n, a in actions.items() if n != "linkgw_globals.conf"} == {"unchanged"}


def test_new_linkgw_files_are_roots_and_readable_by_asterisks_group(etc: Path) -> None:
    """Debian's /etc/asterisk is asterisk:asterisk 0640, and Asterisk runs as asterisk: a
    root:root 0640 linkgw_manager.conf would be a file it cannot read (no AMI user), and
    an asterisk-owned one a file Asterisk could rewrite for root to include. They are
    root's, in Asterisk's group. (Giving a file a group needs root, as the suite runs.)"""
    os.chown(etc / "asterisk.conf", 101, 102)
    apply(plan(etc))
    manager = (etc / "linkgw/linkgw_manager.conf").stat()
    assert (manager.st_uid, manager.st_gid, manager.st_mode & 0o777) == (0, 102, 0o640)
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (etc / "linkgw").iterdir()} == \
        {(0, 102)}
    assert (etc / "manager.conf").stat().st_gid == os.getegid()  # a host file keeps its own


def test_a_host_file_linked_inside_the_asterisk_folder_stays_a_link(etc: Path) -> None:
    """A site that keeps extensions.conf in a repository inside /etc/asterisk, linked into
    place: the file linked to gets the include, the link stays."""
    kept = etc / "site-repo" / "extensions.conf"
    kept.parent.mkdir()
    (etc / "extensions.conf").rename(kept)
    (etc / "extensions.conf").symlink_to(kept)
    apply(plan(etc))
    assert (etc / "extensions.conf").is_symlink()
    assert b"#include linkgw/linkgw_extensions.conf" in kept.read_bytes()
    assert {d.action for d in apply(plan(etc))} == {"unchanged"}


@pytest.mark.parametrize("planted", ["extensions.conf", "linkgw/linkgw_globals.conf",
                                     "linkgw"])
def test_a_link_planted_in_the_asterisk_folder_never_makes_root_write_elsewhere(
        etc: Path, tmp_path: Path, planted: str) -> None:
    """Whoever may write /etc/asterisk (Asterisk's own user, on Debian) links a host file,
    one of linkgw's own files or its folder to a file of root's (/etc/ld.so.preload):
    install refuses, names the link, and writes nothing there."""
    outside = tmp_path / "root-only"
    outside.mkdir()
    (outside / "ld.so.preload").write_bytes(b"kept\n")
    (outside / "linkgw_globals.conf").write_bytes(b"kept\n")
    if planted == "linkgw":
        (etc / "linkgw").symlink_to(outside, target_is_directory=True)
    else:
        (etc / planted).parent.mkdir(exist_ok=True)
        (etc / planted).unlink(missing_ok=True)
        (etc / planted).symlink_to(outside / "ld.so.preload")
    with pytest.raises(InstallRefused, match="not written"):
        apply(plan(etc))
    assert (outside / "ld.so.preload").read_bytes() == b"kept\n"
    assert (outside / "linkgw_globals.conf").read_bytes() == b"kept\n"
    assert sorted(p.name for p in outside.iterdir()) == ["ld.so.preload",
                                                          "linkgw_globals.conf"]


def test_the_example_config_is_readable_by_the_services_group_when_it_exists(
        tmp_path: Path) -> None:
    existing = grp.getgrgid(os.getegid()).gr_name
    made = apply([Write(tmp_path / "a.yaml", b"x: 1\n", 0o640, "example", group=existing),
                  Write(tmp_path / "b.yaml", b"x: 1\n", 0o640, "example",
                        group="no-such-group-linkgw")])
    assert [d.action for d in made] == ["create", "create"]
    assert (tmp_path / "a.yaml").stat().st_gid == os.getegid()
    assert (tmp_path / "a.yaml").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.yaml").read_bytes() == b"x: 1\n"  # written all the same
