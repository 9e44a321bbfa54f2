# PostgreSQL from Debian's packages on the tests' base image: what compose.yaml's
# `${SEALGATE_POSTGRES_IMAGE:-postgres:16}` names in the tests, since no image registry is
# reachable here. It honours the official image's variables that compose.yaml uses
# (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE, PGDATA) and its data directory.
ARG BASE=localhost/sealgate-base:bookworm
FROM ${BASE}

# no cluster made at install time: the entrypoint makes one in PGDATA on first start
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/none.conf \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql

ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
EXPOSE 5432
# a fast shutdown: a smart one would wait for the guardian's pooled connections to go
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
