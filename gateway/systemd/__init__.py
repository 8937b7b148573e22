"""Running under systemd: sd_notify(3) readiness, status, watchdog and reload."""
