"""Pure edits of an Asterisk configuration file: one ``#include`` line, marked as ours,
added at the top level or right under a section's header, and found again.

A line is ours when it ends with :data:`MARK`; a file that already holds the include
(ours, or the administrator's own line naming the same file) is left as it is.
"""

from __future__ import annotations

import re

MARK = "; added by linkgw install"


def include_line(target: str) -> str:
    return f"#include {target}  {MARK}"


def _includes(text: str, target: str) -> bool:
    pattern = re.compile(r"^\s*#include\s+\"?" + re.escape(target) + r"\"?\s*(;.*)?$")
    return any(pattern.match(line) for line in text.splitlines())


def _section_header(line: str, section: str) -> bool:
    """``[section]``, with or without template marks (``[globals](+)``) or a comment."""
    return re.match(r"^\s*\[" + re.escape(section) + r"\](\([^)]*\))?\s*(;.*)?$",
                    line) is not None


def with_include(text: str, target: str, section: str = "") -> str | None:
    """``text`` with the include of ``target`` added (under ``[section]`` when given,
    else at the end, at the top level); None when it is there already.

    A missing section is added at the end with the include in it."""
    if _includes(text, target):
        return None
    line = include_line(target)
    body = text if not text or text.endswith("\n") else text + "\n"
    if not section:
        return f"{body}{line}\n"
    lines = body.splitlines(keepends=True)
    for index, existing in enumerate(lines):
        if _section_header(existing, section):
            return "".join(lines[:index + 1]) + line + "\n" + "".join(lines[index + 1:])
    return f"{body}[{section}]\n{line}\n"


def setting(text: str, section: str, key: str) -> str | None:
    """The last value of ``key`` in ``[section]`` (comments stripped), or None."""
    value, inside = None, False
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            inside = _section_header(line, section)
        elif inside and "=" in line:
            name, _, found = line.partition("=")
            if name.strip().rstrip(">").strip() == key:
                value = found.strip().lstrip(">").strip()
    return value
