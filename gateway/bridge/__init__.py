"""The bridge: one transfer's record, its state machine and the log that persists it."""
