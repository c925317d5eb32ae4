"""What drives the service: HTTP routes, the dashboard page, the Kafka consumer, instruments."""
