"""Limits: exact sliding windows over send times, shared fairly between campaigns."""
