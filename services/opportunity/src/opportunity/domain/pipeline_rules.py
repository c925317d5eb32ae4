"""Pipeline rules from the rules file: which stage moves and wins a pipeline allows."""

from contracts.rules import Pipeline, Stage
from opportunity.domain.errors import InvalidValue, RoleNotAllowed, StageRuleBroken


def target_stage(pipeline: Pipeline, stage_id: str) -> Stage:
    try:
        return pipeline.stage(stage_id)
    except KeyError:
        raise InvalidValue(
            "to_stage",
            f"to_stage is not a stage of pipeline {pipeline.id!r}; "
            f"its stages are {list(pipeline.stage_ids)}",
        ) from None


def check_role(stage: Stage, role: str) -> None:
    if role not in stage.roles:
        raise RoleNotAllowed(
            f"role {role!r} may not move an opportunity into stage {stage.id!r} "
            f"(rules file: roles {[r.value for r in stage.roles]})",
            rule="stage.roles",
            stage=stage.id,
        )


def stages_skipped(pipeline: Pipeline, current: str, to_stage: str, role: str) -> list[str]:
    """The stages an advance passes over; refuses a move back or over an unskippable stage."""
    target = target_stage(pipeline, to_stage)
    here, there = pipeline.index(current), pipeline.index(to_stage)
    if there <= here:
        raise StageRuleBroken(
            "advance.forward",
            f"advance goes to a later stage; {to_stage!r} is not after {current!r}",
            stage=current,
        )
    skipped = list(pipeline.stages[here + 1 : there])
    blocking = [s.id for s in skipped if not s.skippable]
    if blocking:
        raise StageRuleBroken(
            "stage.skippable",
            f"stages {blocking} may not be skipped (rules file: skippable false)",
            stage=current,
            not_skippable=blocking,
        )
    check_role(target, role)
    return [s.id for s in skipped]


def check_revert(pipeline: Pipeline, current: str, to_stage: str, role: str) -> None:
    target = target_stage(pipeline, to_stage)
    if pipeline.index(to_stage) >= pipeline.index(current):
        raise StageRuleBroken(
            "revert.backward",
            f"revert goes to an earlier stage; {to_stage!r} is not before {current!r}",
            stage=current,
        )
    if not target.allow_back:
        raise StageRuleBroken(
            "stage.allow_back",
            f"moving back to {to_stage!r} is not allowed (rules file: allow_back false)",
            stage=current,
        )
    check_role(target, role)


def check_win(pipeline: Pipeline, current: str) -> None:
    if current != pipeline.stage_ids[-1] and not pipeline.stage(current).can_win:
        raise StageRuleBroken(
            "stage.can_win",
            f"a win is recorded at {pipeline.stage_ids[-1]!r} or where the rules allow it; "
            f"not at {current!r}",
            stage=current,
        )
