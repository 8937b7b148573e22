"""The gateway's AMI user for ``manager.conf``: its permission classes are the ones the
shipped example documents (``dialplan/linkgw_manager.conf.example``)."""

from __future__ import annotations

import ipaddress
import re


def documented_classes(example: str) -> tuple[str, str]:
    """The ``read=`` and ``write=`` classes of the shipped AMI user example."""
    values = {}
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in ("read", "write"):
            values[key.strip()] = value.strip()
    return values["read"], values["write"]


class ManagerError(ValueError):
    pass


def manager_user(example: str, username: str, secret: str, permit: str) -> str:
    """``[username]`` with the secret, reachable only from ``permit`` (an address or a
    network)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", username):
        raise ManagerError(f"ami.username {username!r}: use A-Z a-z 0-9 _ . - only")
    if not secret or any(c in secret for c in "\r\n;[]") or secret != secret.strip():
        raise ManagerError("the AMI secret (ami.secret_env) must be set, on one line, "
                           "without ; [ ] or spaces around it")
    try:
        network = ipaddress.ip_network(permit, strict=False)
    except ValueError as exc:
        raise ManagerError(f"--ami-permit {permit!r}: not an address or network") from exc
    read, write = documented_classes(example)
    return (
        "; linkgw — the gateway's AMI user. Written by `linkgw install`; the secret is the\n"
        "; one in the gateway's environment (ami.secret_env). Keep this file 0640.\n"
        f"[{username}]\n"
        f"secret = {secret}\n"
        "deny = 0.0.0.0/0.0.0.0\n"
        f"permit = {network.network_address}/{network.netmask}\n"
        f"read = {read}\n"
        f"write = {write}\n"
        "writetimeout = 1000\n"
    )
