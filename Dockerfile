# syntax=docker/dockerfile:1
# Build stage: make a wheel and install it (with its dependencies) into a venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install .

# Runtime stage: git, bubblewrap (the sandbox for untrusted commands, docs/security.md), the venv,
# a non-root user, volumes and a health check.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates tini bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 runner \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin runner \
    && mkdir -p /workspace /data \
    && chown runner:runner /workspace /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WORKSPACE_DIR=/workspace \
    DATA_DIR=/data \
    HEALTH_PORT=8080
USER runner
WORKDIR /home/runner
VOLUME ["/workspace", "/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["agent-runner", "healthcheck"]
ENTRYPOINT ["tini", "--", "agent-runner"]
CMD ["run"]
