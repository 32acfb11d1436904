# The broadcaster daemon. Mount a deployment (broadcaster.yaml, playbooks/, templates/,
# channels/) at /srv/broadcaster and pass secrets as environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
# DejaVu Sans draws the Instagram share-pic cards (Pillow's own font has no umlauts).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv \
 && useradd --system --create-home --home-dir /home/broadcaster broadcaster

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY broadcaster ./broadcaster
RUN uv sync --locked --no-dev

# The sample deployment; replace it with a volume in production.
COPY --chown=broadcaster broadcaster.yaml /srv/broadcaster/
COPY --chown=broadcaster playbooks /srv/broadcaster/playbooks
COPY --chown=broadcaster templates /srv/broadcaster/templates
COPY --chown=broadcaster channels /srv/broadcaster/channels
RUN mkdir -p /srv/broadcaster/var && chown broadcaster /srv/broadcaster/var

USER broadcaster
WORKDIR /srv/broadcaster
ENV PATH="/app/.venv/bin:$PATH" BROADCASTER_CONFIG=/srv/broadcaster/broadcaster.yaml
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"
CMD ["broadcaster", "run"]
