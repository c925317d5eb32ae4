"""Kafka as the services use it: the broker connected in the background, batch consumers with
explicit commits, ordered sends, and telling a lost log from the consumer's own."""
