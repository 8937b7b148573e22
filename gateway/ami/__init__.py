"""AMI: a pure codec (``codec``) and the reconnecting Twisted client (``client``)."""

from gateway.ami.codec import AmiMessage, AmiParser, UnsafeHeaderError, encode_action
from gateway.ami.errors import AmiActionError, AmiError, AmiNotConnected, AmiTimeout

__all__ = [
    "AmiActionError",
    "AmiError",
    "AmiMessage",
    "AmiNotConnected",
    "AmiParser",
    "AmiTimeout",
    "UnsafeHeaderError",
    "encode_action",
]
