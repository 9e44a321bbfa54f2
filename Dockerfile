# SealGate: the supervisor runs the guardian and the sandbox as two users in one container
# (started as root, the default), or both as the container's user with the single-uid
# protections (started as another uid, e.g. `--user 1000`, as Hugging Face Spaces run every
# image). docs/DEPLOY.md says why root is the default.
#
# BASE: any Debian-family image with Python 3.11+ and its venv module. The default is the
# official Python image; the tests build a local base from Debian's packages (python3,
# python3-venv, tini) since they reach no image registry (docker/podman.sh).
ARG BASE=python:3.11-slim-bookworm

# The dependencies, in a stage of their own: from the lock file, every hash required (a
# poisoned release cannot slip in), into a venv whose user site is off; pip leaves with the
# build. The compiled wheels carry debug information and symbols, a third of their size:
# stripped here (the code itself is as installed), with binutils that stay in this stage.
FROM ${BASE} AS venv
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/sealgate/venv \
    && /opt/sealgate/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock \
    && /opt/sealgate/venv/bin/pip uninstall --yes pip setuptools
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils=2.40* \
    && rm -rf /var/lib/apt/lists/* \
    && find /opt/sealgate/venv -name "*.so*" -type f -exec strip --strip-unneeded {} +

FROM ${BASE}

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/sealgate/sealgate
LABEL org.opencontainers.image.title="SealGate" \
      org.opencontainers.image.description="A multi-LLM API gateway with an MCP interface whose internet-facing process never holds a secret." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# An image made with `podman import` has no PATH: the venv first, then the usual places.
ENV PATH=/opt/sealgate/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini is PID 1: it forwards signals to the supervisor and reaps zombies. A Debian base made
# for the tests has it already; the official Python image gets Debian's package.
# libsodium signs every answer's receipt (guardian/tlog/sodium.py; without it OpenSSL does,
# more slowly). Debian's package where the base lacks it.
RUN if ! command -v tini >/dev/null \
        || [ "$(dpkg-query -W -f='${Status}' libsodium23 2>/dev/null)" != "install ok installed" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends tini=0.19.* libsodium23=1.0.18* \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# The two service users. The supervisor would create them too, but a read-only image
# should not have to. Fixed ids: a secret file mounted from the host (an env file, a
# compose secret) is made the guardian's with `chown 10001:10001` (docs/DEPLOY.md).
RUN groupadd --system --gid 10001 hub-guardian \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin hub-guardian \
    && groupadd --system --gid 10002 hub-sandbox \
    && useradd --system --uid 10002 --gid 10002 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin hub-sandbox

WORKDIR /opt/sealgate

# The venv, owned by root: no service user may write it.
COPY --from=venv /opt/sealgate/venv /opt/sealgate/venv

COPY protocol/ protocol/
COPY guardian/ guardian/
COPY sandbox/ sandbox/
COPY supervise/ supervise/
COPY supervisor.py .pyfun ./
COPY docker/entrypoint.sh docker/healthcheck.py docker/
COPY docker/sealgate-ctl /usr/local/bin/sealgate-ctl
# Byte code compiled now: the root supervisor must not write next to the code at run time
# (python -I ignores PYTHONDONTWRITEBYTECODE), and a read-only root has nowhere to put it.
RUN python -I -m compileall -q /opt/sealgate/protocol /opt/sealgate/guardian \
        /opt/sealgate/sandbox /opt/sealgate/supervisor.py /opt/sealgate/docker/healthcheck.py

# The runtime directory: the supervisor creates guardian/ (0700), sandbox/ (0700) and run/
# (2750) inside it with the right owners. Owned by uid 1000 (Hugging Face Spaces runs the
# container as uid 1000) and never world-writable: a sandbox user able to rename entries in
# it could plant links for a root supervisor to follow. Run as root, the supervisor uses it
# as it is; run as another uid, point HUB_RUNTIME_DIR at a directory that uid owns. The
# entrypoint (docker/entrypoint.sh) puts the databases on a Space's persistent /data when
# it is writable and HUB_RUNTIME_DIR is not set; the sockets stay here.
RUN mkdir -p /var/lib/sealgate && chown 1000:1000 /var/lib/sealgate \
    && chmod 0755 /var/lib/sealgate

# No secret is baked in. They come from the environment (docker run --env-file / a Space's
# secrets), an env file (HUB_ENV_FILE), or Docker secrets under /run/secrets/<NAME>.
ENV HUB_HOST=0.0.0.0 \
    HUB_PORT=7860 \
    HUB_CONFIG=/opt/sealgate/.pyfun \
    SEALGATE_LOCAL_DIR=/var/lib/sealgate \
    SEALGATE_PERSISTENT_DIR=/data \
    HUB_ENV_FILE=/run/secrets/sealgate.env \
    CREDENTIALS_DIRECTORY=/run/secrets

EXPOSE 7860

# Asks /healthz on HUB_PORT (and HUB_HOST unless it is a wildcard), whatever they are set to.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-I", "/opt/sealgate/docker/healthcheck.py"]

ENTRYPOINT ["tini", "--", "/opt/sealgate/docker/entrypoint.sh"]
