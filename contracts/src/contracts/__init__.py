"""Contracts of oppstream: every message on every topic, the rules file, the reminder schedule.

Models only (pydantic, python-stdnum, PyYAML): the order system and the lead service import
them without the services' plumbing, which is `chassis`."""
