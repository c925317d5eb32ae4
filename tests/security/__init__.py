"""Security checks across the three services: authentication, roles, secrets in logs, injection."""
