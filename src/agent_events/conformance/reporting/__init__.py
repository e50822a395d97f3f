"""Reporting: the report model, verdicts, claims, gating, baselines and terminal output."""
