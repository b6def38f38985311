"""Planning: identity, dedupe, suppression, calling hours and the schedule."""
