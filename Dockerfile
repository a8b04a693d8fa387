# syntax=docker/dockerfile:1
# affectstream service, CPU image: runtime dependencies only (no torch), the shipped models (package
# data of the wheel), a non-root user, `affectstream serve` on all interfaces of the container.
#
#   docker build -t affectstream:cpu .
#   docker run --rm --network host -e AFFECTSTREAM_TOKEN="$(openssl rand -hex 24)" affectstream:cpu
#
# A token is REQUIRED and none is baked in: without AFFECTSTREAM_TOKEN (>= 16 characters) the
# service refuses to start ("invalid setting: host: ... requires a token", exit code 2). Pass it as
# an environment variable, not as `--token` (which shows in the process list and which the
# HEALTHCHECK below cannot read). Further `docker run` arguments are `affectstream serve` options
# (`--model NAME`, `--auto-attach`); change the port with `-e AFFECTSTREAM_PORT=...` so that the
# HEALTHCHECK follows.
#
# LSL needs the host network. Discovery is UDP multicast/broadcast (port 16571), then each outlet
# serves its data on a TCP/UDP port of 16572-16603 at the IP address it announces: behind Docker's
# bridge network and NAT the container neither hears the sensors' announcements nor can be reached
# at the address it would announce. Run with `--network host` on a Linux host (Docker Desktop on
# macOS/Windows runs containers in a VM: untested there). A macvlan/ipvlan network that carries
# multicast should also do (untested). LSLAPICFG selects a liblsl configuration file (mount your
# site's file); docker/README.md explains the options and the compose demo.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# A virtual environment is copied whole into the runtime stage (same base image, same paths).
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir pip==26.3
# Only what the wheel is built from (.dockerignore keeps the rest out of the context). The
# dependency versions come from pyproject.toml's runtime set, which has no torch.
COPY pyproject.toml README.md ./
COPY service ./service
COPY streaming ./streaming
COPY models ./models
COPY training ./training
COPY bench ./bench
COPY clients ./clients
RUN pip install --no-cache-dir . \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="affectstream" \
      org.opencontainers.image.description="Real-time valence/arousal from LSL streams (CPU)" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin affectstream
COPY --from=build /opt/venv /opt/venv
# AFFECTSTREAM_HOST=0.0.0.0: reachable from outside the container, hence the token requirement.
# NUMBA_CACHE_DIR: the compiled cvxEDA's cache lives in a writable place (also under --read-only
# with a tmpfs on /tmp); the installed packages stay read-only for the service's user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    AFFECTSTREAM_HOST=0.0.0.0 \
    AFFECTSTREAM_PORT=8000
USER 10001:10001
WORKDIR /home/affectstream
EXPOSE 8000
# /health requires the token too: the check reads it (and the port) from the environment and exits
# non-zero on any failure (connection refused, 401, timeout). No curl in the slim image: Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:%s/health' % os.environ.get('AFFECTSTREAM_PORT', '8000'), headers={'Authorization': 'Bearer ' + os.environ.get('AFFECTSTREAM_TOKEN', '')}), timeout=4)"]
ENTRYPOINT ["affectstream", "serve"]
