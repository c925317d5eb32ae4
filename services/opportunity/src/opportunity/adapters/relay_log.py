"""The relay's log book (chassis.kafka.logbook) in the event store's database: the epoch it
publishes in and where each partition it filled ends, stored with its position. When the
broker lost its log the relay publishes again from the event store, the truth, what its readers
may lack (relay_readers.py); the consumers see the new log, read it, and take each event once
by its identity."""

from chassis.sql.logbooks import logbook_table
from opportunity.adapters.positions import metadata

relay_log = logbook_table("oppstream_relay_log", metadata)
