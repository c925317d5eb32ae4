"""The rules file: pipelines, intake and renewal rules, lost reasons, reminder rules, standards,
the customer and pool sections (customer_rules.py) and reminder delivery (delivery.py).

Loaded and validated once at service start; a bad file is refused with the key and the line.
"""

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.customer import Ownership, Tier
from contracts.customer_rules import Classification, Pool, TypeRules
from contracts.delivery import Delivery
from contracts.durations import Duration, RuleSpan, format_span
from contracts.opportunity import OpportunityType
from contracts.workdays import Span, WorkingDays

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.yaml")

StageId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=50)]


class Role(StrEnum):
    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"
    SERVICE = "service"
    VIEWER = "viewer"


ACTING_ROLES = (Role.REP, Role.MANAGER, Role.ADMIN, Role.SERVICE)


class ForecastCategory(StrEnum):
    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Labels(Rule):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Stage(Rule):
    id: StageId
    label: Labels
    probability: float = Field(ge=0, le=1, description="default win probability")
    forecast_category: ForecastCategory
    guidance: str = Field(default="", description="what a rep gets done in this stage")
    skippable: bool = Field(default=False, description="an advance may pass over it")
    allow_back: bool = Field(default=True, description="a revert may return to it")
    roles: tuple[Role, ...] = Field(
        default=ACTING_ROLES, description="roles that may move an opportunity into it"
    )
    can_win: bool = Field(
        default=False, description="a win is allowed here (always at the last stage)"
    )


class Pipeline(Rule):
    id: str = Field(min_length=1, max_length=50)
    type: OpportunityType
    tier: Tier | None = Field(default=None, description="only for this tier; null: any tier")
    stages: tuple[Stage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _stage_ids_unique(self) -> "Pipeline":
        ids = [s.id for s in self.stages]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"stage ids repeat in pipeline {self.id!r}: {duplicated}")
        return self

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def index(self, stage_id: str) -> int:
        return [s.id for s in self.stages].index(stage_id)

    @property
    def stage_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.stages)


class LostReason(Rule):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Labels


class DeferralReason(Rule):
    """A coded reason to defer an opportunity (未来机会, SPEC §9 issue 14): its label, how long
    until it is looked at again when the rep names no date, and whether a note must say more."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Labels
    revisit_after: Duration = Field(description="revisit_on defaults to the deferral day + this")
    note_required: bool = False

    @field_validator("revisit_after")
    @classmethod
    def _whole_days(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1) or value % timedelta(days=1):
            raise ValueError("revisit_after is a whole number of days, at least 1d")
        return value


# (id, zh, en, days until revisited, note required)
DEFAULT_DEFERRAL_REASONS = tuple(
    DeferralReason(
        id=code, label=Labels(zh=zh, en=en), revisit_after=timedelta(days=days), note_required=note
    )
    for code, zh, en, days, note in (
        ("tender_cycle", "招标周期未到", "Tender cycle not reached", 90, False),
        ("budget_cycle", "预算周期未到", "Budget cycle not reached", 90, False),
        ("fiscal_year", "等待新财年", "Waiting for the next fiscal year", 180, False),
        ("leadership_change", "客户领导层变动", "Leadership change at the customer", 60, False),
        ("other", "其他", "Other", 30, True),
    )
)


class Match(Rule):
    """Facts an opportunity must have for a rule to apply; a missing key matches anything."""

    tier: Tier | None = None
    ownership: Ownership | None = None
    type: OpportunityType | None = None
    stage: StageId | None = None

    @property
    def specificity(self) -> int:
        return sum(v is not None for v in (self.tier, self.ownership, self.type, self.stage))

    def matches(self, tier: str, ownership: str, type_: str, stage: str | None) -> bool:
        return all(
            want is None or want == have
            for want, have in (
                (self.tier, tier),
                (self.ownership, ownership),
                (self.type, type_),
                (self.stage, stage),
            )
        )


# The staleness ladder's steps, shortest first.
LADDER_KEYS = ("follow_up_after", "warn_after", "escalate_after", "reclaim_after")


class ReminderRule(Rule):
    """The staleness ladder of the opportunities it matches: each span counts from the last
    progress, in calendar time (`7d`) or in working days of mainland China (`3wd`)."""

    id: str = Field(min_length=1, max_length=100)
    match: Match = Field(default_factory=Match)
    follow_up_after: RuleSpan | None = None
    warn_after: RuleSpan | None = None
    escalate_after: RuleSpan | None = None
    reclaim_after: RuleSpan | None = None

    @field_validator("warn_after", "escalate_after", "reclaim_after")
    @classmethod
    def _ladder_rises(cls, value: Span | None, info: ValidationInfo) -> Span | None:
        """Each step of the ladder is longer than the steps before it, counted alike: working
        days and calendar time do not compare (5wd is a week, or twelve days over 春节)."""
        if value is None or info.field_name is None:
            return value
        below = [
            (name, info.data[name])
            for name in LADDER_KEYS[: LADDER_KEYS.index(info.field_name)]
            if info.data.get(name) is not None
        ]
        if not below:
            return value
        rule, (name, low) = info.data.get("id"), below[-1]
        if isinstance(value, WorkingDays) and isinstance(low, WorkingDays):
            rises = value > low
        elif isinstance(value, timedelta) and isinstance(low, timedelta):
            rises = value > low
        else:
            raise ValueError(
                f"rule {rule!r} mixes working days and calendar time: {info.field_name} is "
                f"{format_span(value)} but {name} is {format_span(low)}; write every step of "
                "a rule's ladder in working days ('3wd') or none of them"
            )
        if not rises:
            raise ValueError(f"{info.field_name} must be longer than {name} in rule {rule!r}")
        return value


class Reminders(Rule):
    revisit_lead: Duration = Field(
        default=timedelta(days=7), description="revisit_due fires this long before revisit_on"
    )
    rules: tuple[ReminderRule, ...] = Field(min_length=1)

    def rule_for(
        self, tier: str, ownership: str, type_: str, stage: str | None
    ) -> ReminderRule | None:
        """The most specific matching rule; on a tie, the one written first."""
        best: ReminderRule | None = None
        for rule in self.rules:
            if rule.match.matches(tier, ownership, type_, stage) and (
                best is None or rule.match.specificity > best.match.specificity
            ):
                best = rule
        return best


class Intake(Rule):
    resale_when_contract_running: bool = Field(
        default=True,
        description="a lead of a customer with a running won contract becomes a resale",
    )


class Renewal(Rule):
    create_before: Duration = Field(
        default=timedelta(days=90),
        description="create the renewal opportunity this long before contract_end_on",
    )


class Standard(Rule):
    """The industry's value of a stage's metrics for a customer segment."""

    match: Match = Field(default_factory=Match)
    conversion_rate: float | None = Field(default=None, ge=0, le=1)
    conversion_days: float | None = Field(default=None, ge=0)
    win_rate: float | None = Field(default=None, ge=0, le=1)


class Standards(Rule):
    trailing_months: int = Field(default=12, ge=1, le=60)
    industry: tuple[Standard, ...] = ()


class Rulebook(Rule):
    version: str = Field(min_length=1, description="quoted in every reminder it causes")
    pipelines: tuple[Pipeline, ...] = Field(min_length=1)
    lost_reasons: tuple[LostReason, ...] = Field(min_length=1)
    deferral_reasons: tuple[DeferralReason, ...] = Field(
        default=DEFAULT_DEFERRAL_REASONS, min_length=1
    )
    intake: Intake = Field(default_factory=Intake)
    renewal: Renewal = Field(default_factory=Renewal)
    reminders: Reminders
    standards: Standards = Field(default_factory=Standards)
    classification: Classification = Field(default_factory=Classification)
    type_rules: TypeRules = Field(default_factory=TypeRules)
    pool: Pool = Field(default_factory=Pool)
    delivery: Delivery = Field(default_factory=Delivery)

    @field_validator("deferral_reasons")
    @classmethod
    def _deferral_ids_differ(
        cls, reasons: tuple[DeferralReason, ...]
    ) -> tuple[DeferralReason, ...]:
        """A repeated id is refused at the key itself, so the refusal names its line."""
        ids = [r.id for r in reasons]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"deferral reason ids repeat: {repeated}")
        return reasons

    @model_validator(mode="after")
    def _consistent(self) -> "Rulebook":
        ids = [p.id for p in self.pipelines]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pipeline ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        keys = [(p.type, p.tier) for p in self.pipelines]
        if len(set(keys)) != len(keys):
            raise ValueError("two pipelines have the same type and tier")
        missing = [t.value for t in OpportunityType if (t, None) not in keys]
        if missing:
            raise ValueError(f"no pipeline for every tier of type {missing}")
        stages = {s.id for p in self.pipelines for s in p.stages}
        for rule in self.reminders.rules:
            if rule.match.stage is not None and rule.match.stage not in stages:
                raise ValueError(
                    f"reminder rule {rule.id!r} names unknown stage {rule.match.stage!r}"
                )
        return self

    def pipeline_for(self, type_: str, tier: str) -> Pipeline:
        """The tier's own pipeline for the type if there is one, else the type's."""
        fallback = None
        for pipeline in self.pipelines:
            if pipeline.type == type_ and pipeline.tier == tier:
                return pipeline
            if pipeline.type == type_ and pipeline.tier is None:
                fallback = pipeline
        if fallback is None:
            raise KeyError(type_)
        return fallback

    def pipeline(self, pipeline_id: str) -> Pipeline:
        for pipeline in self.pipelines:
            if pipeline.id == pipeline_id:
                return pipeline
        raise KeyError(pipeline_id)

    @property
    def lost_reason_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.lost_reasons)

    def deferral_reason(self, reason_id: str) -> DeferralReason:
        for reason in self.deferral_reasons:
            if reason.id == reason_id:
                return reason
        raise KeyError(reason_id)


class RulebookError(ValueError):
    """The rules file is broken; the message names the file, the key and the line."""


def load_rulebook(path: Path | str | None = None) -> Rulebook:
    path = Path(path) if path is not None else DEFAULT_RULES_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulebookError(f"rules file {path}: cannot be read: {exc.strerror}") from exc
    return parse_rulebook(text, str(path))


def parse_rulebook(text: str, source: str = "<rules>") -> Rulebook:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RulebookError(f"rules file {source}{where}: not valid YAML: {exc}") from exc
    if node is None:
        raise RulebookError(f"rules file {source}: is empty")
    lines: dict[tuple[Any, ...], int] = {}
    data = _to_python(node, (), lines, yaml.SafeLoader(""))
    try:
        return Rulebook.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"  {key} (line {_line_of(loc, lines)}): {error['msg']}")
        raise RulebookError(f"rules file {source} is invalid:\n" + "\n".join(problems)) from exc


def _to_python(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    scalars: yaml.SafeLoader,
) -> Any:
    """Plain data from a YAML node, noting the line each key path starts on."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = scalars.construct_object(key_node)
            result[key] = _to_python(value_node, (*path, key), lines, scalars)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines, scalars) for i, item in enumerate(node.value)]
    return scalars.construct_object(node, deep=True)


def _line_of(loc: Sequence[Any], lines: dict[tuple[Any, ...], int]) -> int:
    for end in range(len(loc), -1, -1):
        if tuple(loc[:end]) in lines:
            return lines[tuple(loc[:end])]
    return 1
