"""``linkgw install``: the gateway's files written into an existing Asterisk."""
