"""The store: the only code that speaks SQL (checkpoint, opt-outs, allowance, lock)."""
