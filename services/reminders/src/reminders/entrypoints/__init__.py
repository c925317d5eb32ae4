"""How the service is driven: HTTP routes, the Kafka consumer, the command line."""
