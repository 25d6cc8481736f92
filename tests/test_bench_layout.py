"""`make bench` runs the platform from the repository root; a move of the bench package must
keep it pointing there (the processes it starts are found by path, not by import)."""

from bench import infra


def test_the_bench_starts_its_processes_from_the_repository_root():
    assert (infra.ROOT / "manage.py").is_file()
    assert (infra.ROOT / "config" / "gunicorn.py").is_file()
