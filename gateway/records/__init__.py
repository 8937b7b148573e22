"""The records feature: ticket correlation, the closed loop, look-ups, figures, the chain.

Everything here reads and writes Redis through a blocking client: the HTTP API runs it
in Twisted's thread pool, the CLI calls it directly. The call path never waits on it.
"""
