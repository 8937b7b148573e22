"""Exceptions of the AMI layer; each carries a stable ``code``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.ami.codec import AmiMessage


class AmiError(Exception):
    code = "ami_error"


class AmiNotConnected(AmiError):
    """No logged-in AMI connection right now, or it was lost with the action pending."""

    code = "ami_not_connected"


class AmiTimeout(AmiError):
    """No response within the action's time limit."""

    code = "ami_timeout"


#: Asterisk's ``Message`` when an action names a channel it does not have (Getvar, …).
NO_SUCH_CHANNEL = "No such channel"


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``."""

    code = "ami_action_error"

    def __init__(self, action: str, response: AmiMessage) -> None:
        super().__init__(f"{action} failed: {response.get('Message')}")
        self.action = action
        self.response = response
