"""Helpers the tests of several folders share (fakes, processes, sample runs)."""
