"""The transfer feature: AGI scripts (``scripts``) and the service that runs bridges (``service``)."""
