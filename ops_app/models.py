"""Operational records (later issues: error records, audit)."""
