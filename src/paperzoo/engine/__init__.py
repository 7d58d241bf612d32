"""Shared engine: seeding, atomic I/O, resumable loops, per-run metrics, aggregation,
the claims verdict rule and the report. Studies plug their steps into these pieces;
no study writes its own training loop, metrics format or verdict logic."""
