"""Test support shared by every suite: real PostgreSQL databases, subprocess services."""
