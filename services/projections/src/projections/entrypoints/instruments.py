"""Prometheus instruments of the projections service (`/metrics`), in a registry of its own."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chassis.kafka.logwatch import LogMetrics
from projections.adapters.store import Outcome

# Outcome fields counted per record, by the label they get.
_COUNTED = (
    "applied",
    "duplicates",
    "held",
    "released",
    "not_projected",
    "poison",
    "already_applied",
)


@dataclass
class Instruments:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.log = LogMetrics.register(self.registry)
        self.events = Counter(
            "oppstream_projection_events_total",
            "Events and records taken by the projections, by outcome (a customer record's "
            "events as an opportunity's): applied, duplicates (a version already applied), held "
            "(waiting for a missing version), released (held, then applied), not_projected "
            "(unknown event type, or an opportunity event's refused payload: version moves on, "
            "no figure changes), poison (not an envelope, or a customer record's event whose "
            "payload the contract refuses: kept aside, version moves on), already_applied (a "
            "record before the stored position)",
            ["outcome"],
            registry=self.registry,
        )
        self.gaps = Counter(
            "oppstream_projection_version_gaps_total",
            "Times an opportunity's or a customer record's next event skipped a version (its "
            "later events are held)",
            registry=self.registry,
        )
        self.held = Gauge(
            "oppstream_projection_held_events",
            "Events waiting for a missing version of their opportunity or customer record",
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.rewinds = Counter(
            "oppstream_projection_rewinds_total",
            "Partitions read again from the stored position (the tables changed under the consumer)",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "oppstream_projection_batch_seconds",
            "Time to apply one consumed batch and store its positions",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "oppstream_projection_batch_size",
            "Records per applied batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=self.registry,
        )
        self.lag = Gauge(
            "oppstream_projection_lag",
            "Records on the assigned partitions not applied yet (high watermark - position)",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.report_seconds = Histogram(
            "oppstream_projection_report_seconds",
            "Time to answer a report",
            ["report"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def count(self, outcome: Outcome) -> None:
        for name in _COUNTED:
            value = getattr(outcome, name)
            if value:
                self.events.labels(name).inc(value)
        if outcome.gaps:
            self.gaps.inc(outcome.gaps)
        if outcome.rewind:
            self.rewinds.inc(len(outcome.rewind))
