"""A run end to end: lock, checkpoint, plan, pre-flight, engine, outputs."""
