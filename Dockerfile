# ovbench: the benchmark job service in a container.
#
# Installs from a wheelhouse in the build context, so the build needs no network:
#   python3 -m pip wheel --wheel-dir wheelhouse .
#   docker build --network none -t ovbench:local .
# (`make image` does both.) The base image is a build argument: python:3.11-slim by default,
# or any Debian-like image with python3 3.11 and python3-venv, such as the bookworm minbase
# image that .ci/docker-prepare.sh makes with debootstrap. Only `python3` is assumed, never a
# `python` alias, so the same steps work on both.
ARG BASE_IMAGE=python:3.11-slim

# Stage 1: build the virtualenv. The wheels stay in this stage and never reach the final image.
FROM ${BASE_IMAGE} AS build
# Lets a cleanup find this stage's leftover image: docker image prune --filter label=ovbench.stage=build
LABEL ovbench.stage=build
COPY wheelhouse/ /wheels/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python3 -m pip install --no-index --find-links /wheels \
        --no-cache-dir --disable-pip-version-check ovbench \
    && /opt/venv/bin/python3 -c "import app, openvino, numpy, PIL"

# Stage 2: the runtime image: the base plus the virtualenv, run as a non-root user.
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OVBENCH_DATA_DIR=/data
RUN groupadd --system --gid 10001 ovbench \
    && useradd --system --uid 10001 --gid ovbench --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin ovbench \
    && mkdir -p /data \
    && chown ovbench:ovbench /data
COPY --from=build /opt/venv /opt/venv
USER ovbench
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# No curl in the image: the venv's python asks /healthz. A success during the start period
# marks the container healthy at once; failures there do not count.
HEALTHCHECK --interval=5s --timeout=4s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3).status == 200 else 1)"]
CMD ["ovbench", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
