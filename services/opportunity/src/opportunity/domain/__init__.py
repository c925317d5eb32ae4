"""The opportunity domain: aggregates and the rules they enforce; no I/O, no HTTP or Kafka."""
