"""Batches mode: paced CSV uploads, re-sends, lookups and reading rows back."""
