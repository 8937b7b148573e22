"""The duty officers' PINs (pure): who pressed 1, when the site wants more than the
extension (``duty.identity: pin``). Kept out of the config file, in an environment
variable (``duty.pins_env``): ``J4201:4821,J4202:1937``, an officer's police number and
a PIN of 4 to 8 digits each."""

from __future__ import annotations

import hmac
import re

_OFFICER = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}\Z")
_PIN = re.compile(r"[0-9]{4,8}\Z")


class PinError(ValueError):
    pass


def parse_pins(text: str) -> dict[str, str]:
    """officer → PIN; PinError, naming the entry (never a PIN), when one is wrong."""
    pins: dict[str, str] = {}
    for number, entry in enumerate((e.strip() for e in text.split(",") if e.strip()), 1):
        officer, sep, pin = entry.partition(":")
        if not sep or not _OFFICER.match(officer) or not _PIN.match(pin):
            raise PinError(f"entry {number} is not officer:PIN (a police number, then 4 to "
                           "8 digits)")
        if officer in pins:
            raise PinError(f"officer {officer} is given twice")
        if pin in pins.values():
            raise PinError(f"entry {number}: two officers have the same PIN")
        pins[officer] = pin
    if not pins:
        raise PinError("no officer:PIN given (duty.identity: pin needs them)")
    return pins


def officer_of(pins: dict[str, str], typed: str) -> str | None:
    """The officer whose PIN was typed (every PIN compared in constant time)."""
    found = None
    for officer, pin in pins.items():
        if hmac.compare_digest(typed.encode(), pin.encode()) and found is None:
            found = officer
    return found
