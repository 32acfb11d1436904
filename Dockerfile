# The broadcaster daemon (docs/deploy.md). The image holds the program only: mount a
# deployment (broadcaster.yaml, playbooks/, templates/, channels/) at /srv/broadcaster and
# pass secrets as environment variables. Build: docker build -t broadcaster .

# Both stages on one base: the venv's python is a link to the base's /usr/local/bin/python.
FROM python:3.11-slim-trixie AS builder

# uv pinned, so that a rebuild resolves nothing: the versions come from uv.lock alone.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
# Then the package itself, installed into the venv (not as a link to /app/broadcaster).
COPY broadcaster ./broadcaster
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim-trixie AS runtime

# DejaVu Sans draws the Instagram share-pic cards (Pillow's own font has no umlauts).
# The version is trixie's, pinned like the Python packages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core=2.37-8 \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid, so that files on mounted volumes keep their owner across rebuilds.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin broadcaster \
 && mkdir -p /srv/broadcaster /var/lib/broadcaster \
 && chown broadcaster:broadcaster /srv/broadcaster /var/lib/broadcaster

COPY --from=builder /app/.venv /app/.venv

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH="/app/.venv/bin:$PATH" \
    BROADCASTER_CONFIG=/srv/broadcaster/broadcaster.yaml XDG_STATE_HOME=/var/lib/broadcaster
# By number (the user made above): a runtime can check it is not root without /etc/passwd.
USER 10001:10001
WORKDIR /srv/broadcaster
# The deployment's broadcaster.yaml must say http.listen: 0.0.0.0:8080.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["broadcaster", "run"]
