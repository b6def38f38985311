"""The engine: the send gate, calls mode and batches mode, collecting outcomes."""
