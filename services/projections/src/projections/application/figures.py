"""A cohort's figures as the reports compose them: one pipeline's share (reach overall and per
segment, dwell and open amounts per stage), and the leaderboard's wins, ranked."""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from contracts.rules import Pipeline, Rulebook
from projections.application.read_model import Cohort
from projections.domain import dwell as dwell_
from projections.domain import forecast as forecast_
from projections.domain.funnel import Reach, reach
from projections.domain.standards import Segment


class PipelineFigures:
    """One pipeline's share of a cohort: reach overall and per segment, dwell per stage."""

    def __init__(self, pipeline: Pipeline, cohort: Cohort, currency: str = "CNY") -> None:
        self.pipeline = pipeline
        n = len(pipeline.stages)
        mine = [r for r in cohort.reach if r.pipeline_id == pipeline.id]
        self.reach = reach(mine, n, cohort.include_voided)
        self.segments: dict[Segment, Reach] = {}
        for r in mine:
            self.segments.setdefault((r.tier, r.ownership), Reach(n, cohort.include_voided)).add(
                r.furthest_index, r.status, r.count
            )
        self._dwell: dict[str, dwell_.StageDwell] = defaultdict(dwell_.StageDwell)
        self._completed_by_segment: dict[str, dict[Segment, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        for v in cohort.visits:
            if v.pipeline_id == pipeline.id:
                self._dwell[v.stage].add_completed(
                    v.exit_kind, v.count, v.dwell_seconds, v.paused_seconds
                )
                self._dwell[v.stage].add_working_days(v.counted_in_working_days, v.working_days)
                self._completed_by_segment[v.stage][(v.tier, v.ownership)] += v.count
        self._open: dict[str, tuple[Decimal, dict[str, Decimal]]] = {}
        for o in cohort.open:
            if o.pipeline_id == pipeline.id:
                self._dwell[o.stage].add_open(o.count, o.age_seconds)
                amount, others = self._open.get(o.stage, (Decimal(0), {}))
                if o.currency == currency:
                    amount += o.amount
                else:
                    others[o.currency] = others.get(o.currency, Decimal(0)) + o.amount
                self._open[o.stage] = (amount, others)

    def dwell(self, stage: str) -> dwell_.StageDwell:
        return self._dwell.get(stage) or dwell_.StageDwell()

    def open_stage(self, stage: str) -> tuple[Decimal, dict[str, Decimal]]:
        return self._open.get(stage, (Decimal(0), {}))

    def segment_reached(self, i: int) -> dict[Segment, float]:
        return {s: float(r.reached[i]) for s, r in self.segments.items()}

    def segment_closed(self, i: int) -> dict[Segment, float]:
        return {s: float(r.won + r.lost_reached[i]) for s, r in self.segments.items()}

    def segment_completed(self, stage: str) -> dict[Segment, float]:
        return dict(self._completed_by_segment.get(stage, {}))


def forecast_rates(rules: Rulebook, cohort: Cohort) -> Callable[[str, str], forecast_.Rate]:
    """The forecast's win rate at each stage (SPEC §5): measured on the cohort where it has a
    closed opportunity that reached the stage, else the stage's probability in the rules file."""
    rates: dict[tuple[str, str], forecast_.Rate] = {}
    for p in rules.pipelines:
        r = PipelineFigures(p, cohort).reach
        for i, stage in enumerate(p.stages):
            closed = r.won + r.lost_reached[i]
            if closed:
                rates[(p.id, stage.id)] = forecast_.Rate(
                    Decimal(r.won) / Decimal(closed), "measured"
                )
            else:
                rates[(p.id, stage.id)] = forecast_.Rate(
                    Decimal(str(stage.probability)), "probability"
                )

    def rate_of(pipeline_id: str, stage: str) -> forecast_.Rate:
        return rates.get((pipeline_id, stage), forecast_.Rate(Decimal(0), "none"))

    return rate_of


@dataclass
class Wins:
    count: int = 0
    amount: Decimal = Decimal(0)
    other: dict[str, Decimal] | None = None

    def add(self, currency: str, amount: Decimal, report_currency: str) -> None:
        self.count += 1
        if currency == report_currency:
            self.amount += amount
        else:
            self.other = self.other or {}
            self.other[currency] = self.other.get(currency, Decimal(0)) + amount


def ranked(keys: list[dict[str, Any]], wins: list[Wins]) -> list[dict[str, Any]]:
    rows = sorted(zip(keys, wins, strict=True), key=lambda kw: (-kw[1].amount, -kw[1].count))
    ranked, rank, previous = [], 0, None
    for position, (key, w) in enumerate(rows, start=1):
        if (w.amount, w.count) != previous:
            rank, previous = position, (w.amount, w.count)
        ranked.append(
            {
                **key,
                "rank": rank,
                "won_count": w.count,
                "won_amount": forecast_.money(w.amount),
                "won_amount_other_currencies": {
                    k: forecast_.money(v) for k, v in sorted((w.other or {}).items())
                },
            }
        )
    return ranked
