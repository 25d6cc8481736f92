# One image for every mendhook process: web, worker, beat, flower and the migrate job
# (see docker-compose.yml; each service only changes the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Dependencies before code, so a code change reuses this layer; hashes pin every artifact.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY manage.py pyproject.toml ./
COPY config ./config
COPY webhooks_app ./webhooks_app
COPY workflows_app ./workflows_app
COPY ops_app ./ops_app
# Installed as an app for its management commands; its fake Clio is mounted only with DEMO_SANDBOX.
COPY localdev ./localdev

# Settings refuse to load without a key; this throwaway one lives only in this build step.
RUN PLAIN_HTTP=true SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --noinput --verbosity 0

# Not root: Celery warns against it, and nothing here needs it. The home directory is where
# gunicorn puts its control socket.
RUN useradd --create-home --uid 10001 mendhook && mkdir -p /app/var && chown mendhook /app/var
USER mendhook

EXPOSE 8000 5555
CMD ["gunicorn", "-c", "config/gunicorn.py"]
