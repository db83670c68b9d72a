# syntax=docker/dockerfile:1
# Build and run: docs/deploy.md (Docker or podman), with the measured size of each layer.

# Build stage: install the runner and its dependencies into a venv, then slim the venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# binutils (strip) only here; the runtime image never sees it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY runner ./runner
# The .pyc files stay (about 8 MB): without them every start compiles openai, anthropic and
# temporalio again, in memory, since uid 1000 cannot write /opt/venv.
RUN /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip install . \
    # No installer in the runtime: pip, setuptools and wheel leave the venv, with their scripts.
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel \
    && rm -f /opt/venv/bin/pip* /opt/venv/bin/wheel /opt/venv/bin/easy_install* \
    && site=/opt/venv/lib/python3.11/site-packages \
    && rm -rf "$site/_distutils_hack" "$site/distutils-precedence.pth" "$site/pkg_resources" \
    # temporalio's wheel carries the Rust sources of its bridge (never read at run time).
    && rm -rf "$site/temporalio/bridge/sdk-core" "$site/temporalio/bridge/src" "$site"/temporalio/bridge/Cargo.* \
    # Debug symbols of the compiled extensions (the dynamic symbols Python loads stay).
    && find "$site" -name '*.so' -type f -exec strip --strip-unneeded {} + \
    && ! /opt/venv/bin/python -m pip --version

# Runtime stage: git, bubblewrap (the sandbox for untrusted commands, docs/security.md), tini,
# the venv, a non-root user, volumes and a health check. One layer for the system changes.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates tini bubblewrap \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    # No installer in the base's Python either: pip, setuptools and wheel (and the wheels
    # ensurepip would reinstall them from) leave every site-packages directory.
    && py=$(command -v python3) \
    && for dir in $("$py" -c 'import site, sysconfig; print(" ".join({*site.getsitepackages(), sysconfig.get_path("purelib")}))') /usr/lib/python3/dist-packages; do \
         rm -rf "$dir"/pip "$dir"/pip-* "$dir"/setuptools "$dir"/setuptools-* "$dir"/wheel "$dir"/wheel-* \
                "$dir"/pkg_resources "$dir"/_distutils_hack "$dir"/distutils-precedence.pth; \
       done \
    && rm -rf "$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/ensurepip" \
    && rm -f /usr/local/bin/pip* /usr/bin/pip* /usr/local/bin/wheel /usr/bin/wheel \
    && ! "$py" -m pip --version 2>/dev/null \
    && groupadd --gid 1000 runner \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin runner \
    && mkdir -p /workspace /data \
    && chown runner:runner /workspace /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WORKSPACE_DIR=/workspace \
    DATA_DIR=/data \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080
USER runner
WORKDIR /home/runner
VOLUME ["/workspace", "/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["agent-runner", "healthcheck"]
ENTRYPOINT ["tini", "--", "agent-runner"]
CMD ["run"]
