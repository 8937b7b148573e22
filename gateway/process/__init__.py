"""Process-mode AGI: the transfer feature as programs Asterisk starts per call
(``AGI(/path/onekey,…)``), for sites that do not allow network AGI.

- :mod:`gateway.process.agi` is the program: it answers the dialplan from the standard
  library, this project's pure codecs and the config alone (no Twisted, no Redis client
  on the way to the answer), then detaches what is left to do;
- :mod:`gateway.process.desk` decides like the gateway service and dials with a short
  blocking AMI session;
- :mod:`gateway.process.follower` is the detached process that owns a bridge and follows
  it to its end, built by the same composition root as the service
  (:func:`gateway.app.build_transfer`); :mod:`gateway.process.writer` only writes changes.
"""
