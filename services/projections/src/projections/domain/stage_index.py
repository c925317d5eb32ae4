"""Stage positions of every pipeline in the rules file, for `reached(S)` and the funnel."""

from contracts.rules import Pipeline, Rulebook


class PipelineIndex:
    """Where each stage sits in its pipeline (0 = first stage)."""

    def __init__(self, rules: Rulebook) -> None:
        self.rules = rules
        self._positions = {p.id: {s.id: i for i, s in enumerate(p.stages)} for p in rules.pipelines}

    def index(self, pipeline_id: str, stage: str) -> int | None:
        """The stage's position, or None when the rules no longer know it."""
        return self._positions.get(pipeline_id, {}).get(stage)

    def pipeline(self, pipeline_id: str) -> Pipeline | None:
        try:
            return self.rules.pipeline(pipeline_id)
        except KeyError:
            return None
