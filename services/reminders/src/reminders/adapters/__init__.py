"""The outside world behind the use cases: the SQL store, the Kafka publisher, the history feed."""
