# Stand-in for postgres:16 where Docker Hub cannot be reached (scripts/compose-check.sh builds it):
# Debian bookworm's PostgreSQL (15) behind an entrypoint that honours the official image's
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA and PGPORT, so docker-compose.yml runs
# unchanged against it.
ARG BASE_IMAGE=local/debian-base:bookworm
FROM ${BASE_IMAGE}
# No cluster of Debian's own and no service start at install time (as the official image does).
RUN mkdir -p /etc/postgresql-common \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
    && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
