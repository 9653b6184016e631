# Stand-in for python:3.11-slim where Docker Hub cannot be reached (scripts/compose-check.sh builds
# it): Debian bookworm's own Python 3.11 in a virtual environment on PATH, so `python` and `pip`
# behave as in the official image (no system-wide "externally managed" refusal).
# extra-ca/ holds the build machine's own extra CA certificates (compose-check.sh copies them from
# /usr/local/share/ca-certificates; empty elsewhere): where HTTPS goes through an inspecting egress
# proxy, pip inside the image must trust what the host trusts.
ARG BASE_IMAGE=local/debian-base:bookworm
FROM ${BASE_IMAGE}
COPY extra-ca/ /usr/local/share/ca-certificates/extra/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv ca-certificates netbase tzdata procps \
    && rm -rf /var/lib/apt/lists/* \
    && update-ca-certificates \
    && python3 -m venv /usr/local/python \
    && /usr/local/python/bin/pip install --no-cache-dir --upgrade pip
ENV PATH=/usr/local/python/bin:$PATH LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
