"""The 24-hour duty phone: a new work order rings it until an officer accepts it."""
