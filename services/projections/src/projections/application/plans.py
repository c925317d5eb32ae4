"""The reports of SPEC §9 and of the deferral analysis: attainment of targets, a competition's
standings, deferrals by reason. Read-model queries finished by the pure figures."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from contracts.competitions import CompetitionMetric
from contracts.rules import Rulebook
from contracts.targets import Period
from projections.application.figures import forecast_rates
from projections.application.read_model import Events, Query, ReadModel
from projections.domain import attainment as attainment_
from projections.domain.deferrals import by_reason
from projections.domain.forecast import money
from projections.domain.standings import COUNTED, standings


class UnknownCompetition(LookupError):
    """No competition has this id (HTTP 404)."""


@dataclass(frozen=True)
class Viewer:
    """Whose attainment a principal reads (SPEC §4.4): everyone's (viewer, admin, service); a
    rep the own, the own team's and the company's; a manager the own team's, its reps' and the
    company's."""

    everyone: bool = True
    rep_id: str | None = None
    team_id: str | None = None

    def sees(self, scope: str, scope_id: str, teams_of_rep: set[str]) -> bool:
        if self.everyone or scope == attainment_.COMPANY:
            return True
        if scope == "team":
            return scope_id == self.team_id
        if self.rep_id is not None:
            return scope_id == self.rep_id
        return self.team_id in teams_of_rep


@dataclass(frozen=True)
class Rep:
    id: str
    team_id: str | None


class PlanReports:
    def __init__(
        self,
        read_model: ReadModel,
        rules: Rulebook,
        zone: ZoneInfo,
        currency: str,
        reps: Iterable[Rep],
    ) -> None:
        self.rm, self.rules, self.zone, self.currency = read_model, rules, zone, currency
        self.reps = tuple(reps)

    def _midnight(self, period: Period) -> tuple[datetime, datetime]:
        return (
            datetime.combine(period.start, time.min, tzinfo=self.zone),
            datetime.combine(period.end, time.min, tzinfo=self.zone),
        )

    # -- /attainment -----------------------------------------------------------------------

    def attainment(
        self,
        period: Period,
        now: datetime,
        viewer: Viewer,
        *,
        scope: str | None = None,
        scope_id: str | None = None,
        metric: str | None = None,
        as_of: datetime | None = None,
    ) -> dict[str, Any]:
        at = as_of or now
        start, end = self._midnight(period)
        everyone = Query(as_of=as_of)
        created_or_won = (attainment_.CREATED, attainment_.WON)
        with self.rm.reading() as reading:
            changes = reading.target_changes(period.text, at)
            credits = reading.credits(Events(created_or_won, start, end, at))
            cohort, _ = reading.cohorts(everyone, everyone, at, visits=False)
            open_owned = reading.open_owned(as_of, period.start, period.end)
        targets = attainment_.targets_then(changes)
        companies = sorted({k[1] for k in targets if k[0] == attainment_.COMPANY})
        found = attainment_.figures(
            credits,
            open_owned,
            forecast_rates(self.rules, cohort),
            self.currency,
            companies or [attainment_.COMPANY],
        )
        teams_of_rep: dict[str, set[str]] = {}
        for rep in self.reps:
            if rep.team_id is not None:
                teams_of_rep.setdefault(rep.id, set()).add(rep.team_id)
        for change in targets.values():
            if change.scope == "rep" and change.team_id is not None:
                teams_of_rep.setdefault(change.scope_id, set()).add(change.team_id)
        for credit in credits:
            if credit.owner_id is not None and credit.team_id is not None:
                teams_of_rep.setdefault(credit.owner_id, set()).add(credit.team_id)
        items = [
            item
            for item in attainment_.items(
                targets, found, [metric] if metric else attainment_.METRICS
            )
            if scope in (None, item["scope"])
            and scope_id in (None, item["scope_id"])
            and viewer.sees(
                item["scope"], item["scope_id"], teams_of_rep.get(item["scope_id"], set())
            )
        ]
        return {
            "as_of": at.isoformat(),
            "period": period.text,
            "currency": self.currency,
            "items": items,
        }

    # -- /competitions ----------------------------------------------------------------------

    def competitions(self) -> dict[str, Any]:
        with self.rm.reading() as reading:
            found = reading.competitions()
        return {
            "competitions": [
                {
                    "id": c.competition_id,
                    "name": c.name,
                    "metric": c.metric,
                    "from": c.from_at.isoformat(),
                    "to": c.to_at.isoformat(),
                    "team_ids": orjson.loads(c.team_ids),
                    "tiers": orjson.loads(c.tiers),
                    "types": orjson.loads(c.types),
                }
                for c in found
            ]
        }

    # -- /competitions/{id}/standings ------------------------------------------------------

    def standings(
        self, competition_id: str, now: datetime, as_of: datetime | None = None
    ) -> dict[str, Any]:
        at = as_of or now
        with self.rm.reading() as reading:
            c = reading.competition(competition_id)
            if c is None:
                raise UnknownCompetition(competition_id)
            metric = CompetitionMetric(c.metric)
            team_ids: list[str] = orjson.loads(c.team_ids)
            events = Events(
                (COUNTED[metric],),
                c.from_at,
                c.to_at,
                at,
                tuple(orjson.loads(c.types)),
                tuple(orjson.loads(c.tiers)),
            )
            credits = reading.credits(events)
        amounts = metric is CompetitionMetric.WON_AMOUNT
        credited = [
            (cr.owner_id, cr.team_id, cr.amount if amounts else Decimal(cr.events))
            for cr in credits
            if cr.owner_id is not None
            and (not team_ids or cr.team_id in team_ids)
            and (not amounts or cr.currency == self.currency)
        ]
        reps = [(r.id, r.team_id) for r in self.reps if not team_ids or r.team_id in team_ids]
        rows = standings(credited, reps)
        for row in rows:
            row["value"] = money(row["value"]) if amounts else int(row["value"])
        return {
            "id": c.competition_id,
            "name": c.name,
            "metric": c.metric,
            "from": c.from_at.isoformat(),
            "to": c.to_at.isoformat(),
            "as_of": at.isoformat(),
            "currency": self.currency,
            "standings": rows,
        }

    # -- /deferrals ------------------------------------------------------------------------

    def deferrals(
        self, q: Query, now: datetime, start: datetime | None, end: datetime | None
    ) -> dict[str, Any]:
        at = q.as_of or now
        with self.rm.reading() as reading:
            episodes = reading.deferrals(replace(q, include_voided=True), start, end)
        found = by_reason(episodes, [r.id for r in self.rules.deferral_reasons], at)
        labels = {r.id: r.label for r in self.rules.deferral_reasons}
        reasons = []
        for reason, f in found.items():
            label = labels.get(reason)
            reasons.append(
                {
                    "reason": reason,
                    "label": None if label is None else {"zh": label.zh, "en": label.en},
                    "deferred": f.deferred,
                    "reactivated": f.reactivated,
                    "won_after_reactivation": f.won_after_reactivation,
                    "lost": f.lost,
                    "still_deferred": f.still_deferred,
                    "ended_otherwise": f.ended_otherwise,
                    "median_days_deferred": f.median_days_deferred,
                }
            )
        return {
            "as_of": at.isoformat(),
            "from": None if start is None else start.isoformat(),
            "to": None if end is None else end.isoformat(),
            "reasons": reasons,
        }
