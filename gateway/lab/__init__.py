"""The lab: a real Asterisk 22, Redis, SIPp softphones and the gateway, on loopback.

Used by the demo (``python -m gateway.lab demo``) and the end-to-end tests. Every process
it starts is stopped by its own pid, also when a test fails.
"""
