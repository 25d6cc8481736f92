#!/usr/bin/env python
"""Django's command-line utility for mendhook."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.bootstrap import secret_key_ensure

    # Settings refuse to load without SECRET_KEY; the embedded default (`make run`) keeps one in
    # var/secret_key. Only runplatform creates it; other commands use it once it exists.
    secret_key_ensure(os.environ, create=sys.argv[1:2] == ["runplatform"])

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
