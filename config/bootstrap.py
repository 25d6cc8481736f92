"""What the embedded default (`make run`) needs before settings load: its var/ directory and a
SECRET_KEY kept there. Nothing here imports Django settings; manage.py calls it first."""

import os
import secrets
from collections.abc import Callable, MutableMapping
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]


def var_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("MENDHOOK_VAR_DIR") or BASE_DIR / "var").resolve()


def read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The file's content, or a new value written with owner-only permissions. Returns
    (value, created)."""
    if path.exists() and path.read_text().strip():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value, True


def secret_key_ensure(environ: MutableMapping[str, str], *, create: bool) -> None:
    """Give settings the embedded default's SECRET_KEY, kept in var/secret_key.

    manage.py calls this before settings load (they refuse to load without a key). Only
    runplatform creates the file; other commands use it once it exists, so
    `manage.py send_sample_webhooks` works beside `make run` without exporting anything.
    """
    if environ.get("SECRET_KEY"):
        return
    path = var_dir(environ) / "secret_key"
    if create or path.exists():
        environ["SECRET_KEY"], _ = read_or_create(path, lambda: secrets.token_urlsafe(50))
