# HMS-hjulet bot image. Configure with the environment (MicrosoftAppId, MicrosoftAppPassword,
# MicrosoftAppTenantId, DATABASE_URL=postgresql://..., HMS_CONFIG=/config/unit.yaml) and run
# `hms-bot db upgrade` once per release before starting replicas.
FROM python:3.11-slim AS build
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
COPY config config
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /app hms
COPY --from=build /install /usr/local
COPY config /app/config
WORKDIR /app
ENV HMS_CONFIG=/app/config/khm.yaml \
    PORT=3978 \
    PYTHONUNBUFFERED=1
USER hms
EXPOSE 3978
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3978\")}/healthz')"
CMD ["hms-bot", "serve"]
