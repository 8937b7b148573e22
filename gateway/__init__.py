"""linkgw: the 110 ⇄ 12345 linkage gateway.

Rooms of the house:

- ``gateway.agi``      AGI wire codec (pure) and the FastAGI server (Twisted)
- ``gateway.ami``      AMI wire codec (pure) and the reconnecting AMI client (Twisted)
- ``gateway.bridge``   the bridge record, its state machine and the bridge log (Redis)
- ``gateway.transfer`` the call flows run by AGI scripts: register a call, one-key transfer
- ``gateway.lab``      the lab (not in the wheel): a real Asterisk + Redis + SIPp on loopback
"""

__all__: list[str] = []
