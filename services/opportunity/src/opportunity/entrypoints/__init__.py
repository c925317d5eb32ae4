"""Where commands and queries come in: the HTTP API and the Kafka consumers."""
