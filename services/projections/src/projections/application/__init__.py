"""Use cases: the reports composed from read-model queries, and the rebuild of the read model."""
