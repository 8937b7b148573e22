"""Who made a change of the record, and by which way in.

Every human action through the API or the CLI names its operator: a staff number at
12345, a police number at 110. It is required there (``operator_missing``), kept on the
record (``<step>_by`` beside ``<step>_via``) and on the event (``operator`` beside
``via``). What a system sends on its own (the inbound stream, the trunk's hand-over)
records an operator when it gives one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.records.errors import Malformed

#: A staff or police number: letters, digits, ``.``, ``_``, ``-``; at most 32.
_OPERATOR = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}\Z")


def operator_id(value: Any, required: bool = True) -> str:
    """The operator id a request gave, checked; "" when optional and not given."""
    if value is None or value == "":
        if required:
            raise Malformed("operator missing: give the staff or police number of who "
                            "acts (`operator`)", "operator_missing")
        return ""
    if not isinstance(value, str) or not _OPERATOR.match(value):
        raise Malformed(f"operator {str(value)[:40]!r} is not a staff or police number "
                        "(letters, digits, . _ -; at most 32)", "operator_malformed")
    return value


@dataclass(frozen=True)
class Actor:
    via: str  # api, cli, stream, trunk
    operator: str = ""

    @classmethod
    def human(cls, via: str, operator: Any) -> Actor:
        """An action a person took (API, CLI): the operator is required."""
        return cls(via, operator_id(operator))

    @classmethod
    def system(cls, via: str, operator: Any = None) -> Actor:
        """What a system sent: an operator recorded when it gave one."""
        return cls(via, operator_id(operator, required=False))

    def fields(self, step: str) -> dict[str, str]:
        """The record's ``<step>_via`` and, when known, ``<step>_by``."""
        return {f"{step}_via": self.via} | ({f"{step}_by": self.operator}
                                            if self.operator else {})

    @property
    def data(self) -> dict[str, str]:
        """The event's ``via`` and, when known, ``operator``."""
        return {"via": self.via} | ({"operator": self.operator} if self.operator else {})
