"""The use cases of the opportunity service and how they run: units of work, group commit."""
