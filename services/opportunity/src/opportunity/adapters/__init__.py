"""What the service talks to: the event store's SQL, the broker, locks and tables of its own."""
