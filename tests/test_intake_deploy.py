"""Production settings: `check --deploy` is clean by default, a weak key is refused, and an
anonymous large body costs a web worker little memory."""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.processes import ROOT, start_gunicorn
from tests.support.worker import worker_env

MIB = 1024 * 1024


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py in a production-like environment: only what a deployment sets, no PLAIN_HTTP."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MENDHOOK_VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_defaults(tmp_path):
    # A deployment sets its own key for secrets at rest; without one check --deploy warns.
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secrets.token_urlsafe(50),
        SECRETS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_plain_http_turns_the_tls_settings_off_and_check_deploy_says_so(tmp_path):
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secrets.token_urlsafe(50),
        PLAIN_HTTP="true",
    )
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


@pytest.mark.parametrize("key", ["test-only-insecure-key", "django-insecure-" + "k" * 50, "ab" * 40])
def test_a_weak_secret_key_is_refused_when_debug_is_off(tmp_path, key):
    result = manage(tmp_path, "check", SECRET_KEY=key)
    assert result.returncode != 0
    assert "SECRET_KEY is weak" in result.stderr


def test_plain_http_allows_a_weak_key_for_local_work(tmp_path):
    assert manage(tmp_path, "check", SECRET_KEY="test-only-insecure-key", PLAIN_HTTP="true").returncode == 0


def test_production_sessions_are_https_only_behind_a_tls_proxy(tmp_path):
    script = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    result = manage(tmp_path, "shell", "-c", script, SECRET_KEY=secrets.token_urlsafe(50), BEHIND_TLS_PROXY="true")
    assert result.stdout.splitlines()[-1:] == ["('HTTP_X_FORWARDED_PROTO', 'https') True True True"], result.stderr


# --- Memory: a large anonymous body --------------------------------------------------------


def _rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the resident set's high-water mark: catches a brief peak
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def _only_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.fixture
def gunicorn(transactional_db) -> Iterator[str]:
    proc, url = start_gunicorn(worker_env())
    yield url, _only_child(proc.proc.pid)
    proc.stop()


def _chunks(total: int) -> Iterator[bytes]:
    chunk = b"a" * MIB
    for _ in range(total // MIB):
        yield chunk


def test_a_64_mib_anonymous_post_to_the_admin_login_costs_the_worker_little_memory(gunicorn):
    url, worker_pid = gunicorn
    for _ in range(3):  # warm: the login page's imports and templates are not what we measure
        page = httpx.get(f"{url}/admin/login/", timeout=10)
    before = _rss_peak_kib(worker_pid)

    size = 64 * MIB
    response = httpx.post(
        f"{url}/admin/login/",
        content=_chunks(size),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(size)},
        # With the CSRF cookie, as a browser sends it: else the token check fails before the
        # body is read and the test would measure nothing.
        cookies={"csrftoken": page.cookies["csrftoken"]},
        timeout=60,
    )

    grown_mib = (_rss_peak_kib(worker_pid) - before) / 1024
    assert grown_mib < 8, f"the worker's peak RSS grew by {grown_mib:.0f} MiB"
    assert response.status_code == 400  # RequestDataTooBig, before the body is read
