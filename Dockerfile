# syntax=docker/dockerfile:1
# natsd container image: a drop-in for the official `nats` image.
#
#   docker build -t natsd .
#   docker run -p 4222:4222 -p 8222:8222 natsd
#   docker run -e NATSD_WORKERS=4 -v $PWD/my.conf:/etc/natsd/natsd.conf:ro natsd
#
# See docs/operations.md ("Container") for signals, health and sizing.

# --- build: wheels for natsd and its dependencies ---------------------------
FROM python:3.13-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY natsd ./natsd
COPY supervisor ./supervisor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------
FROM python:3.13-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NATSD_MONITOR_PORT=8222
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels natsd \
 && groupadd --system --gid 10001 natsd \
 && useradd --system --uid 10001 --gid natsd --no-create-home --shell /usr/sbin/nologin natsd \
 && mkdir -p /etc/natsd
COPY config/docker.conf /etc/natsd/natsd.conf

USER 10001:10001
# 4222 clients, 8222 HTTP monitoring, 6222 reserved for clustering (not
# implemented by natsd yet; exposed to match the official image).
EXPOSE 4222 8222 6222

# slim has no curl: probe /healthz with the interpreter we already ship.
# urlopen raises on 503, so an unavailable server fails the check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NATSD_MONITOR_PORT', '8222'), timeout=2)"]

# natsd runs as PID 1 (exec), so SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 reach
# it directly. NATSD_WORKERS, when set, becomes --workers; otherwise the
# config file decides (default: one worker per CPU).
ENTRYPOINT ["/bin/sh", "-c", "if [ -n \"${NATSD_WORKERS:-}\" ]; then set -- --workers \"$NATSD_WORKERS\" \"$@\"; fi; exec natsd \"$@\"", "natsd"]
CMD ["-c", "/etc/natsd/natsd.conf"]
