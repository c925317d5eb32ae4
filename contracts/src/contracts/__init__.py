"""Contracts of oppstream: every message on every topic, the rules file, the reminder schedule."""
