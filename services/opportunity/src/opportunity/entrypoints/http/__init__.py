"""The HTTP API of the opportunity service (SPEC §4.1)."""
