"""Shared pytest configuration. Area-specific fixtures live in tests/fixtures_*.py."""

pytest_plugins = ["fixtures_sandbox"]
