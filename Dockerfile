# syntax=docker/dockerfile:1
# Build and run: docs/deploy.md (Docker or podman), with the measured size of each layer.

# Build stage: install the runner and its dependencies into a venv, then slim the venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# binutils (strip) and Debian's whole git package (with perl) only here: the runtime gets the
# git the runner calls (builtins and git-remote-http), not the perl scripts it never runs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils git \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /git-root/usr/bin /git-root/usr/lib /git-root/usr/share \
    && cp -a /usr/lib/git-core /git-root/usr/lib/ \
    && cp -a /usr/share/git-core /git-root/usr/share/ \
    && rm -rf /git-root/usr/share/git-core/contrib \
    && cd /git-root/usr/lib/git-core \
    # Daemons, servers, mail and GUI helpers, scalar, dumb-HTTP push: nothing the runner or a
    # sandboxed agent calls. Perl scripts too (no perl in the runtime).
    && rm -rf git-daemon git-http-backend git-http-fetch git-http-push git-imap-send git-shell scalar \
              git-instaweb git-web--browse mergetools git-mergetool git-mergetool--lib git-difftool--helper \
    && for f in *; do if head -c 64 "$f" | grep -q '^#!.*perl'; then rm -f "$f"; fi; done \
    # The dashed builtins are hard links to git: make them symbolic links (stored once for sure).
    && for f in git-*; do \
         if [ "$f" -ef git ]; then ln -sf git "$f"; \
         elif [ "$f" != git-remote-http ] && [ "$f" -ef git-remote-http ]; then ln -sf git-remote-http "$f"; fi; \
       done \
    && ln -s ../lib/git-core/git /git-root/usr/bin/git \
    && ! grep -rlI '^#!.*perl' /git-root/usr/lib
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY docker/slim_venv.py /tmp/slim_venv.py
# Compiled code only (docker/slim_venv.py): the pure-Python packages as .pyc in one zip, the
# others as sourceless .pyc; start-up compiles nothing (uid 1000 cannot write /opt/venv).
RUN /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip install . \
    # psycopg's own implementation on Debian's libpq5 (in the runtime) instead of the binary
    # wheel's bundled copy of libpq, OpenSSL and Kerberos (about 10 MB).
    && /opt/venv/bin/pip uninstall --yes psycopg-binary \
    # No installer in the runtime: pip, setuptools and wheel leave the venv, with their scripts.
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools wheel \
    && rm -f /opt/venv/bin/pip* /opt/venv/bin/wheel /opt/venv/bin/easy_install* \
    && site=/opt/venv/lib/python3.11/site-packages \
    && rm -rf "$site/_distutils_hack" "$site/distutils-precedence.pth" "$site/pkg_resources" \
    # temporalio's wheel carries the Rust sources of its bridge (never read at run time).
    && rm -rf "$site/temporalio/bridge/sdk-core" "$site/temporalio/bridge/src" "$site"/temporalio/bridge/Cargo.* \
    # Debug symbols of the compiled extensions (the dynamic symbols Python loads stay).
    && find "$site" -name '*.so' -type f -exec strip --strip-unneeded {} + \
    && /opt/venv/bin/python /tmp/slim_venv.py "$site" \
    && ! /opt/venv/bin/python -m pip --version

# Runtime stage: git (from the build stage; its libraries from apt), bubblewrap (the sandbox for
# untrusted commands, docs/security.md), tini, libpq, the venv, a non-root user, volumes and a
# health check. One layer for the system changes.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini bubblewrap \
         libcurl3-gnutls libexpat1 libpcre2-8-0 zlib1g libpq5 \
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
COPY --from=build /git-root/ /
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
