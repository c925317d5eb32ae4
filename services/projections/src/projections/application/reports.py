"""The reports the HTTP API answers, shaped as SPEC §4.2 fixes (`/funnel`) or the README says.

Read-model queries finished by the pure metric functions.
"""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from contracts import schedule
from contracts.opportunity import Status
from contracts.rules import Pipeline, Rulebook
from projections.application.figures import PipelineFigures, Wins, forecast_rates, ranked
from projections.application.read_model import Cohort, Query, Reading, ReadModel
from projections.domain import dwell as dwell_
from projections.domain import forecast as forecast_
from projections.domain.funnel import conversion_rates, win_rates
from projections.domain.periods import months_before, period_of
from projections.domain.standards import Metric, Segment, blended_industry_standard, falls_below


class Reports:
    def __init__(
        self, read_model: ReadModel, rules: Rulebook, zone: ZoneInfo, currency: str
    ) -> None:
        self.rm, self.rules, self.zone, self.currency = read_model, rules, zone, currency

    # -- reading ---------------------------------------------------------------------------

    def _cohorts(
        self, r: Reading, q: Query, at: datetime, *, visits: bool = True
    ) -> tuple[Cohort, Cohort]:
        """The query's cohort and the company's trailing one, read together."""
        return r.cohorts(q, self._company_query(q, at), at, visits=visits)

    def _company_query(self, q: Query, at: datetime) -> Query:
        """The company's own trailing window (SPEC §5): the same segment, everyone's
        opportunities created in the `standards.trailing_months` months before the start of
        the cohort's creation window when one is given, else before `at`."""
        end = q.created_from or at
        start = months_before(end.astimezone(self.zone), self.rules.standards.trailing_months)
        return q.company(start, end)

    def _windows(self, q: Query, at: datetime) -> dict[str, dict[str, str | None]]:
        """The creation windows the cohort and the company standard cover (`from` null: any), in
        the business time zone."""
        company = self._company_query(q, at)

        def local(value: datetime | None) -> str | None:
            return _iso(None if value is None else value.astimezone(self.zone))

        return {
            "cohort": {"from": local(q.created_from), "to": local(q.created_to or at)},
            "company": {"from": local(company.created_from), "to": local(company.created_to)},
        }

    def _pipelines(self, q: Query) -> list[Pipeline]:
        return [
            p
            for p in self.rules.pipelines
            if (q.type is None or p.type == q.type)
            and (q.tier is None or p.tier is None or p.tier == q.tier)
        ]

    # -- /funnel ---------------------------------------------------------------------------

    def funnel(self, q: Query, now: datetime) -> dict[str, Any]:
        at = q.as_of or now
        with self.rm.reading() as reading:
            cohort, company = self._cohorts(reading, q, at)
        pipelines = []
        for p in self._pipelines(q):
            figures = PipelineFigures(p, cohort, self.currency)
            theirs = PipelineFigures(p, company, self.currency)
            rates, company_rates = conversion_rates(figures.reach), conversion_rates(theirs.reach)
            stages = []
            for i, stage in enumerate(p.stages):
                d, company_days = figures.dwell(stage.id), theirs.dwell(stage.id).conversion_days
                industry_rate = self._industry(
                    "conversion_rate", p, stage.id, figures.segment_reached(i), q
                )
                industry_days = self._industry(
                    "conversion_days", p, stage.id, figures.segment_completed(stage.id), q
                )
                open_stage = figures.open_stage(stage.id)
                stages.append(
                    {
                        "stage": stage.id,
                        "label": f"{stage.label.zh} {stage.label.en}",
                        "reached": figures.reach.reached[i],
                        "conversion_rate": rates[i],
                        "conversion_days": d.conversion_days,
                        "conversion_working_days": d.conversion_working_days,
                        "completed_visits": d.completed,
                        "open_visits": {"count": d.open, "mean_age_days": d.open_mean_age_days},
                        "open_amount": forecast_.money(open_stage[0]),
                        "open_amount_other_currencies": {
                            k: forecast_.money(v) for k, v in open_stage[1].items()
                        },
                        "standard": {"industry": industry_rate, "company": company_rates[i]},
                        "below_standard": falls_below(rates[i], industry_rate),
                        "below_company": falls_below(rates[i], company_rates[i]),
                        "standard_days": {"industry": industry_days, "company": company_days},
                        "below_standard_days": falls_below(
                            d.conversion_days, industry_days, lower_is_better=True
                        ),
                    }
                )
            pipelines.append(
                {
                    "pipeline_id": p.id,
                    "type": p.type.value,
                    "tier": p.tier.value if p.tier else None,
                    "opportunities": figures.reach.total,
                    "stages": stages,
                    "won": figures.reach.won,
                    "lost": figures.reach.lost,
                    "voided": figures.reach.voided,
                }
            )
        return {
            "as_of": _iso(at),
            "currency": self.currency,
            "standard_windows": self._windows(q, at),
            "pipelines": pipelines,
        }

    # -- /dwell ----------------------------------------------------------------------------

    def dwell(self, q: Query, now: datetime) -> dict[str, Any]:
        at = q.as_of or now
        with self.rm.reading() as reading:
            cohort, company = self._cohorts(reading, q, at)
        pipelines = []
        for p in self._pipelines(q):
            figures, theirs = PipelineFigures(p, cohort), PipelineFigures(p, company)
            stages = []
            for stage in p.stages:
                d = figures.dwell(stage.id)
                industry = self._industry(
                    "conversion_days", p, stage.id, figures.segment_completed(stage.id), q
                )
                company_days = theirs.dwell(stage.id).conversion_days
                stages.append(
                    {
                        "stage": stage.id,
                        "completed_visits": d.completed,
                        "conversion_days": d.conversion_days,
                        "conversion_working_days": d.conversion_working_days,
                        "total_days": d.total_days,
                        "paused_days": d.paused_seconds / dwell_.DAY,
                        "completed_by_exit": dict(sorted(d.completed_by_exit.items())),
                        "open_visits": {"count": d.open, "mean_age_days": d.open_mean_age_days},
                        "standard": {"industry": industry, "company": company_days},
                        "below_standard": falls_below(
                            d.conversion_days, industry, lower_is_better=True
                        ),
                        "below_company": falls_below(
                            d.conversion_days, company_days, lower_is_better=True
                        ),
                    }
                )
            pipelines.append({"pipeline_id": p.id, "type": p.type.value, "stages": stages})
        return {"as_of": _iso(at), "standard_windows": self._windows(q, at), "pipelines": pipelines}

    # -- /win-rates ------------------------------------------------------------------------

    def win_rates(self, q: Query, now: datetime) -> dict[str, Any]:
        at = q.as_of or now
        with self.rm.reading() as reading:
            cohort, company = self._cohorts(reading, q, at, visits=False)
        pipelines = []
        for p in self._pipelines(q):
            figures, theirs = PipelineFigures(p, cohort), PipelineFigures(p, company)
            rates, company_rates = win_rates(figures.reach), win_rates(theirs.reach)
            stages = []
            for i, stage in enumerate(p.stages):
                industry = self._industry("win_rate", p, stage.id, figures.segment_closed(i), q)
                lost = figures.reach.lost_reached[i]
                stages.append(
                    {
                        "stage": stage.id,
                        "reached": figures.reach.reached[i],
                        "won": figures.reach.won,
                        "lost": lost,
                        "closed": figures.reach.won + lost,
                        "win_rate": rates[i],
                        "probability": stage.probability,
                        "standard": {"industry": industry, "company": company_rates[i]},
                        "below_standard": falls_below(rates[i], industry),
                        "below_company": falls_below(rates[i], company_rates[i]),
                    }
                )
            r = figures.reach
            pipelines.append(
                {
                    "pipeline_id": p.id,
                    "type": p.type.value,
                    "won": r.won,
                    "lost": r.lost,
                    "win_rate": (r.won / (r.won + r.lost)) if r.won + r.lost else None,
                    "stages": stages,
                }
            )
        return {"as_of": _iso(at), "standard_windows": self._windows(q, at), "pipelines": pipelines}

    # -- /forecast -------------------------------------------------------------------------

    def forecast(self, q: Query, now: datetime) -> dict[str, Any]:
        at = q.as_of or now
        with self.rm.reading() as reading:
            cohort, _ = self._cohorts(reading, q, at, visits=False)
            rows = reading.open_amounts(q)
            won = reading.won_by_month(q)
        rate_of = forecast_rates(self.rules, cohort)
        months = forecast_.forecast(rows, rate_of, self.currency)
        stages = {
            (p.id, st.id): st.forecast_category.value
            for p in self.rules.pipelines
            for st in p.stages
        }
        by_category = forecast_.categories(
            rows, lambda p, st: stages.get((p, st), "pipeline"), won, self.currency
        )
        months = forecast_.with_months(months, by_category)
        total_amount = sum((m.amount for m in months), Decimal(0))
        total_weighted = sum((m.weighted for m in months), Decimal(0))
        used = sorted({(r.pipeline_id, r.stage) for r in rows})
        return {
            "as_of": _iso(at),
            "currency": self.currency,
            "months": [
                {
                    "month": m.month,
                    "opportunities": m.opportunities,
                    "without_amount": m.without_amount,
                    "amount": forecast_.money(m.amount),
                    "weighted": forecast_.money(m.weighted),
                    "other_currencies": {
                        cur: {k: forecast_.money(v) for k, v in sums.items()}
                        for cur, sums in sorted(m.other_currencies.items())
                    },
                    "categories": forecast_.category_figures(by_category.get(m.month, {})),
                }
                for m in months
            ],
            "total": {
                "amount": forecast_.money(total_amount),
                "weighted": forecast_.money(total_weighted),
            },
            "rates": [
                {
                    "pipeline_id": pid,
                    "stage": stage,
                    "win_rate": float(rate_of(pid, stage).value),
                    "basis": rate_of(pid, stage).basis,
                }
                for pid, stage in used
            ],
        }

    # -- /stale ----------------------------------------------------------------------------

    def stale(self, q: Query, now: datetime, limit: int, offset: int) -> dict[str, Any]:
        at = q.as_of or now
        with self.rm.reading() as reading:
            total, rows = reading.stale(q, limit, offset)
        items = []
        for row in rows:
            facts = schedule.Facts(
                type=row["type"],
                tier=row["tier"],
                ownership=row["ownership"],
                stage=row["stage"],
                status=Status.OPEN,
                last_progress_at=row["last_progress_at"],
            )
            timers = schedule.timers(self.rules, facts, self.zone)
            reclaim = schedule.reclaim_at(timers)
            rule = next(
                (t.rule_id for t in timers if t.kind is schedule.TimerKind.RECLAIM_DUE), None
            )
            items.append(
                {
                    "id": row["id"],
                    "customer_name": row["customer_name"],
                    "uscc": row["uscc"],
                    "type": row["type"],
                    "tier": row["tier"],
                    "ownership": row["ownership"],
                    "classified_by": row["classified_by"],
                    "pipeline_id": row["pipeline_id"],
                    "stage": row["stage"],
                    "owner_id": row["owner_id"],
                    "team_id": row["team_id"],
                    "amount": None if row["amount"] is None else forecast_.money(row["amount"]),
                    "currency": row["currency"],
                    "last_progress_at": _iso(row["last_progress_at"]),
                    "idle_days": (at - row["last_progress_at"]).total_seconds() / dwell_.DAY,
                    "reclaim_at": _iso(reclaim),
                    "reclaim_rule_id": rule,
                    "reclaim_overdue": reclaim is not None and reclaim <= at,
                }
            )
        return {"as_of": _iso(at), "total": total, "limit": limit, "offset": offset, "items": items}

    # -- /leaderboard ----------------------------------------------------------------------

    def leaderboard(
        self,
        q: Query,
        now: datetime,
        period: str,
        won_from: datetime | None,
        won_to: datetime | None,
    ) -> dict[str, Any]:
        at = q.as_of or now
        owners: dict[str, dict[tuple[str | None, str | None], Wins]] = defaultdict(dict)
        teams: dict[str, dict[str | None, Wins]] = defaultdict(dict)
        with self.rm.reading() as reading:
            for owner_id, team_id, currency, amount, won_at in reading.wins(q):
                if (won_from is not None and won_at < won_from) or (
                    won_to is not None and won_at >= won_to
                ):
                    continue
                key = period_of(won_at.astimezone(self.zone), period)
                owner = owners[key].setdefault((owner_id, team_id), Wins())
                team = teams[key].setdefault(team_id, Wins())
                for wins in (owner, team):
                    wins.add(currency, amount or Decimal(0), self.currency)
        periods = []
        for key in sorted(set(owners) | set(teams)):
            periods.append(
                {
                    "period": key,
                    "owners": ranked(
                        [{"owner_id": o, "team_id": t} for (o, t) in owners[key]],
                        list(owners[key].values()),
                    ),
                    "teams": ranked(
                        [{"team_id": t} for t in teams[key]], list(teams[key].values())
                    ),
                }
            )
        return {"as_of": _iso(at), "period": period, "currency": self.currency, "periods": periods}

    # -- standards -------------------------------------------------------------------------

    def _industry(
        self,
        metric: Metric,
        pipeline: Pipeline,
        stage: str,
        weights: dict[Segment, float],
        q: Query,
    ) -> float | None:
        return blended_industry_standard(
            self.rules, metric, pipeline.type.value, stage, weights, (q.tier, q.ownership)
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
