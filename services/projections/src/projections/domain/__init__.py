"""The read model's rules, pure (no I/O): the projection step, stage visits and §5's figures."""
