# syntax=docker/dockerfile:1
# geoslide image: the `geoslide` CLI plus `dask scheduler` / `dask worker`, run by helm/geoslide.
#
# CPU image (default):
#   docker build -t registry.example.org/geoslide:0.1.0-cpu .
# GPU image (CUDA build of the same torch version; the host only needs the NVIDIA driver):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#     -t registry.example.org/geoslide:0.1.0-cu128 .
# The Helm chart runs it as uid/gid 10001 with a read-only root filesystem; /tmp is an emptyDir there.

# The base image (both stages), pinned by digest so that a moved tag cannot change what is built. Where the
# digest comes from: the same reference (python:3.11.10-slim-bookworm@sha256:5148c0e4...) is
# pinned in several public Dockerfiles, among them nalabelle/build images/digests.Dockerfile, a
# file of digests that Renovate keeps in step with Docker Hub. It could not be checked against
# Docker Hub from the machine this was written on (no registry access); `docker buildx imagetools
# inspect python:3.11.10-slim-bookworm` prints it. Bump version and digest together
# (helm/README.md, "Images").
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16 AS base
# No HEALTHCHECK: one image runs the CLI, `dask scheduler` and `dask worker`, and only Kubernetes
# knows which; the chart gives each a readiness and liveness probe on the Dask /health endpoint.
# checkov:skip=CKV_DOCKER_2: health is probed by the Helm chart per role (scheduler, worker), see helm/README.md

FROM base AS build
# pyproject.toml takes torch>=2.4,<3; TORCH_VERSION picks the build (2.13.0: the version CI tests).
ARG TORCH_VERSION=2.13.0
# Index to take torch from: .../whl/cpu (default, small) or a CUDA index such as .../whl/cu128.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Extra packages for the cluster image: bokeh serves the Dask dashboard.
ARG EXTRA_PACKAGES="bokeh>=3.1"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/geoslide
ENV PATH=/opt/geoslide/bin:$PATH
# torch first, from the chosen index: `pip install .` then finds torch ${TORCH_VERSION} (a
# +cpu/+cuXXX build satisfies the range) and does not pull the default PyPI build.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY geoslide ./geoslide
COPY catalogs ./catalogs
RUN pip install . ${EXTRA_PACKAGES} \
    && pip check \
    && geoslide --help >/dev/null

FROM base
LABEL org.opencontainers.image.title="geoslide" \
      org.opencontainers.image.description="Dask/xarray landslide mapping: STAC imagery in, landslide inventories out" \
      org.opencontainers.image.licenses="MIT"
# Non-root user with a fixed uid/gid, matching the chart's runAsUser/fsGroup (10001).
RUN groupadd --gid 10001 geoslide \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/geoslide \
       --shell /usr/sbin/nologin geoslide
COPY --from=build /opt/geoslide /opt/geoslide
ENV PATH=/opt/geoslide/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# Pipelines are shipped so `geoslide run pipelines/NAME.yaml` works inside the container.
COPY pipelines ./pipelines
# Numeric USER so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# No ENTRYPOINT: the chart sets `command` (geoslide, dask scheduler, dask worker) per container.
CMD ["geoslide", "--help"]
