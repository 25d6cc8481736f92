"""`make bench` runs the platform from the repository root; a move of the bench package must
keep it pointing there (the processes it starts are found by path, not by import)."""

from bench import infra


def test_the_bench_starts_its_processes_from_the_repository_root():
    assert (infra.ROOT / "manage.py").is_file()
    assert (infra.ROOT / "config" / "gunicorn.py").is_file()


def test_the_outbound_phase_can_be_run_alone_against_the_issues_bars():
    from bench.__main__ import parse
    from bench.report import OUTBOUND_RATIO_BAR, OUTBOX_COST_BAR

    assert parse(["--only", "outbound"]).only == "outbound"
    assert (OUTBOUND_RATIO_BAR, OUTBOX_COST_BAR) == (0.3, 0.7)
