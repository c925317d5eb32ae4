"""Prometheus metrics of the reminders service, in a registry of its own."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chassis.kafka.logwatch import LogMetrics


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.log = LogMetrics.register(self.registry)
        self.events = Counter(
            "oppstream_reminders_events_total",
            "Records of crm.opportunity.events taken, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.fired = Counter(
            "oppstream_reminders_fired_total",
            "Timers fired (each once), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.published = Counter(
            "oppstream_reminders_published_total",
            "Fired timers whose messages the broker acknowledged",
            registry=self.registry,
        )
        self.log_losses = Counter(
            "oppstream_reminders_log_losses_total",
            "Times the broker lost records of crm.reminders or crm.opportunity.commands it had "
            "acknowledged",
            registry=self.registry,
        )
        self.sent_again = Counter(
            "oppstream_reminders_commands_sent_again_total",
            "Reclaim and renewal commands queued again after the broker lost its log",
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "oppstream_reminders_tick_seconds",
            "Time of one scheduler round (look for due timers, fire, publish)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.fire_delay = Histogram(
            "oppstream_reminders_fire_delay_seconds",
            "Fired time minus due time (overdue on computation included)",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 60, 3600, 86400),
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "oppstream_reminders_outbox_pending",
            "Fired timers not yet acknowledged by the broker (all partitions; read at scrape)",
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "oppstream_deliveries_total",
            "Attempts to deliver a reminder to a channel, by channel and outcome "
            "(delivered, failed: tried again later, parked: given up until retried)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.deliveries_parked = Gauge(
            "oppstream_deliveries_parked",
            "Reminder deliveries parked after their last attempt (read at scrape)",
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.partitions = Gauge(
            "oppstream_reminders_partitions_owned",
            "Partitions of crm.opportunity.events this copy consumes and fires timers for",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
