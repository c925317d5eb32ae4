"""What timers follow from and when they fire: plain data and pure functions, no I/O."""
