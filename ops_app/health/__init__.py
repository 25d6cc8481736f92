"""Liveness and readiness: which components answer, judged per process role (readiness.py)."""
