"""The Redis users of linkgw: ``config/redis.acl`` made ready for one site.

The shipped file holds the permissions only (``resetpass``: nobody can log in with it as
it is) for the default key prefix ``linkgw``. :func:`render` writes the file Redis loads:
the site's prefix in every key pattern, and each user's password as its SHA-256 hash
(``#<hex>``, so the clear password is never in the file). Redis ACL files allow no
comments: the file is ``user`` lines only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

#: Each user, and the environment variable ``linkgw redis-acl`` reads its password from.
USERS: dict[str, str] = {
    "linkgw-gateway": "LINKGW_REDIS_PASSWORD_GATEWAY",
    "linkgw-12345": "LINKGW_REDIS_PASSWORD_12345",
    "linkgw-supervisor": "LINKGW_REDIS_PASSWORD_SUPERVISOR",
    "linkgw-maintenance": "LINKGW_REDIS_PASSWORD_MAINTENANCE",
}

_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # no space, no glob character
_PATTERN = re.compile(r"(?<=~)linkgw:")  # a key pattern of the shipped prefix


class AclError(ValueError):
    pass


def render(template: str, prefix: str, passwords: Mapping[str, str]) -> str:
    """The ACL file for ``prefix`` with the given passwords (user → clear password)."""
    if _PREFIX.fullmatch(prefix) is None:
        raise AclError(f"key prefix {prefix!r}: letters, digits, '_', '.', '-' only")
    lines = []
    for number, line in enumerate(template.splitlines(), 1):
        if not line.strip():
            continue
        words = line.split()
        if words[0] != "user" or len(words) < 3 or words[1] not in USERS \
                or "resetpass" not in words:
            raise AclError(f"line {number}: not a linkgw user line with resetpass")
        line = _PATTERN.sub(f"{prefix}:", line)
        password = passwords.get(words[1], "")
        if password:
            digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
            line = line.replace(" resetpass ", f" resetpass #{digest} ", 1)
        lines.append(line)
    missing = set(USERS) - {line.split()[1] for line in lines}
    if missing:
        raise AclError(f"users missing from the file: {', '.join(sorted(missing))}")
    return "\n".join(lines) + "\n"
