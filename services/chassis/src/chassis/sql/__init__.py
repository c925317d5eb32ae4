"""SQL stores as the services use them: engines and aware instants, and what a failed store
operation says."""
