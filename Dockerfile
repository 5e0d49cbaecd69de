# HMS-hjulet bot image. Configure it with the environment (MicrosoftAppId, MicrosoftAppPassword,
# MicrosoftAppTenantId, DATABASE_URL=postgresql://..., HMS_CONFIG=/config/unit.yaml mounted read-only) and run
# `hms-bot db upgrade` once per release before starting replicas. Without DATABASE_URL the bot keeps SQLite in
# the volume /data (one replica only).
#
# The base is pinned by digest: python:3.11-slim-bookworm (Python 3.11.16) as docker-library/repo-info lists it
# (repos/python/remote/3.11-slim-bookworm.md, images of 25 August 2026). To take a newer one:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # the "Digest:" line
# and put it here.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

# The bot as a wheel, built with the base image's own setuptools (pinned with it): nothing is downloaded here.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hms hms
COPY storage storage
COPY cards cards
COPY usecases usecases
COPY bot bot
COPY scheduler scheduler
COPY cli cli
COPY teamsapp teamsapp
COPY playground/*.py playground/guard.cjs playground/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# The dependencies exactly as locked (versions and hashes; scripts/lock refreshes the file): a layer of their
# own, rebuilt only when the lock changes. /app is root's: the bot cannot change its own code.
COPY requirements.lock /app/requirements.lock
RUN python -m venv /app/venv \
    && /app/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
       -r /app/requirements.lock
# The bot itself, from the first stage (mounted, so the wheel stays out of the image; BuildKit, Docker's default).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    /app/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index /wheels/hms_hjulet-*.whl
# The bot's user owns the data folder only: the SQLite database when DATABASE_URL is unset (a volume).
RUN groupadd --system --gid 10001 hms \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin hms \
    && mkdir /data && chown 10001:10001 /data && chmod 0700 /data
ENV PATH=/app/venv/bin:$PATH \
    HMS_DATA_DIR=/data \
    PORT=3978 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
WORKDIR /app
USER 10001:10001
EXPOSE 3978
# Ready: the database is reachable and migrated (/readyz); the start period covers migrations on SQLite.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '3978'), timeout=4)"]
CMD ["hms-bot", "serve"]
