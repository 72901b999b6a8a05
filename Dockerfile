# One image for both processes: `paperboy serve` (the default, Slack over HTTP on $PORT) and
# `paperboy worker` (give it as the command). compose.yaml runs both on PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000

# Extras to install too, e.g. `--build-arg EXTRAS=semantic` for search by meaning.
ARG EXTRAS=""

WORKDIR /src
COPY pyproject.toml README.md ./
COPY adapters ./adapters
COPY bot ./bot
COPY config ./config
COPY storage ./storage
RUN if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi \
    && rm -rf /src

# Not root: the bot needs no privilege. Its working directory holds a SQLite database when
# DATABASE_URL names none elsewhere (mount a volume on /data to keep it).
RUN useradd --system --create-home --uid 10001 paperboy \
    && mkdir /data && chown paperboy:paperboy /data
USER paperboy
WORKDIR /data

EXPOSE 3000
# Ready means the database answers (adapters/ops.py); urlopen fails on a 503 or no answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '3000'), timeout=4)"

CMD ["paperboy", "serve"]
