"""The use cases: take events into the facts, fire due timers, backtest a rules file."""
