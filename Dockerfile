# SealGate: the supervisor runs the guardian and the sandbox as two users in one container
# (started as root), or both as the container's user with the single-uid protections
# (started as uid 1000, as Hugging Face Spaces run every image).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini is PID 1: it forwards signals to the supervisor and reaps zombies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.* \
    && rm -rf /var/lib/apt/lists/*

# The two service users. The supervisor would create them too, but a read-only image
# should not have to.
RUN useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --user-group hub-guardian \
    && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --user-group hub-sandbox

WORKDIR /opt/sealgate

# Dependencies from the lock file, every hash required: a poisoned release cannot slip in.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY protocol/ protocol/
COPY guardian/ guardian/
COPY sandbox/ sandbox/
COPY supervise/ supervise/
COPY supervisor.py .pyfun ./
COPY docker/entrypoint.sh docker/
# The operator CLI finds the admin socket where the entrypoint puts the runtime directory.
# Isolated (-I): no user site, no PYTHON* variables; /opt/sealgate goes on sys.path explicitly.
# hadolint ignore=SC2016
RUN printf '%s\n' '#!/bin/sh' \
        'export HUB_RUNTIME_DIR="${HUB_RUNTIME_DIR:-/var/lib/sealgate}"' \
        'exec python -I -c "import sys; sys.path.insert(0, \"/opt/sealgate\"); sys.argv[0] = \"sealgate-ctl\"; from guardian.ctl import main; sys.exit(main())" "$@"' \
        > /usr/local/bin/sealgate-ctl \
    && chmod 0755 /usr/local/bin/sealgate-ctl

# The runtime directory: the supervisor creates guardian/ (0700), sandbox/ (0700) and run/
# (2750) inside it with the right owners. Owned by uid 1000 (Hugging Face Spaces runs the
# container as uid 1000) and never world-writable: a sandbox user able to rename entries in
# it could plant links for a root supervisor to follow. Run as root, the supervisor uses it
# as it is; run as another uid, point HUB_RUNTIME_DIR at a directory that uid owns. The
# entrypoint (docker/entrypoint.sh) puts the databases on a Space's persistent /data when
# it is writable and HUB_RUNTIME_DIR is not set; the sockets stay here.
RUN mkdir -p /var/lib/sealgate && chown 1000:1000 /var/lib/sealgate \
    && chmod 0755 /var/lib/sealgate

# No secret is baked in. They come from the environment (docker run -e / a Space's
# secrets), an env file (HUB_ENV_FILE), or Docker secrets under /run/secrets/<NAME>.
ENV HUB_HOST=0.0.0.0 \
    HUB_PORT=7860 \
    HUB_CONFIG=/opt/sealgate/.pyfun \
    SEALGATE_LOCAL_DIR=/var/lib/sealgate \
    SEALGATE_PERSISTENT_DIR=/data \
    HUB_ENV_FILE=/run/secrets/sealgate.env \
    CREDENTIALS_DIRECTORY=/run/secrets

EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-I", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["tini", "--", "/opt/sealgate/docker/entrypoint.sh"]
