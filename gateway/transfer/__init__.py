"""The transfer feature: the AGI scripts (``scripts``) and the service running bridges."""
