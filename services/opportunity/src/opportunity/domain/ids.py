"""Deterministic aggregate ids: uuid5 names in the service's own namespace."""

from uuid import NAMESPACE_URL, uuid5

ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://oppstream/ids")
