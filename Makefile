# mendhook: `make run` starts the platform, `make test` runs every quality gate.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-16)

.PHONY: venv run test lint typecheck pytest bench chaos lock clean

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mendhook needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/python manage.py runplatform

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	PLAIN_HTTP=true SECRET_KEY=$${SECRET_KEY:-lint-only-insecure-key} $(BIN)/mypy .

pytest: venv
	bash .ci/system-deps
	$(BIN)/pytest

test: lint pytest

bench: venv
	$(BIN)/python -m bench

chaos: venv
	$(BIN)/python -m chaos --events $(or $(EVENTS),3000)

# Re-resolve dependencies after editing pyproject.toml.
lock:
	$(PYTHON) -m venv /tmp/mendhook-uv && /tmp/mendhook-uv/bin/pip install --quiet uv
	UV_CUSTOM_COMPILE_COMMAND="make lock" /tmp/mendhook-uv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
