"""Prometheus metrics of the opportunity service, in a registry of its own."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chassis.kafka.logwatch import LogMetrics


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.log = LogMetrics.register(self.registry)
        self.commands = Counter(
            "oppstream_commands_total",
            "Commands answered, by command and HTTP status",
            ["command", "status"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "oppstream_command_seconds",
            "Time to answer a command",
            ["command"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.batch_sizes = Histogram(
            "oppstream_group_commit_batch_size",
            "Commands saved per transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.relayed = Counter(
            "oppstream_relay_events_total", "Events the relay published", registry=self.registry
        )
        self.relay_lag = Gauge(
            "oppstream_relay_lag",
            "Notifications recorded but not yet published to Kafka",
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.relay_leader = Gauge(
            "oppstream_relay_leader",
            "1 while this copy holds the relay lock",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.relay_log_losses = Counter(
            "oppstream_relay_log_losses_total",
            "Times the relay found that the broker lost records it had acknowledged, and "
            "started publishing again, under a new log epoch, what its readers may lack",
            registry=self.registry,
        )
        self.relay_read_by_all = Gauge(
            "oppstream_relay_read_by_all",
            "Notification position up to which every reader group (OPPSTREAM_RELAY_READER_"
            "GROUPS) has read the events topic: after a lost log, what follows it is published "
            "again",
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.leads = Counter(
            "oppstream_leads_total",
            "Qualified leads taken, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.remote_commands = Counter(
            "oppstream_remote_commands_total",
            "Commands from crm.opportunity.commands, by outcome",
            ["outcome"],
            registry=self.registry,
        )
