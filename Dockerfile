# syntax=docker/dockerfile:1
# geoslide image: the `geoslide` CLI plus `dask scheduler` / `dask worker`, run by helm/geoslide.
#
# CPU image (default):
#   docker build -t registry.example.org/geoslide:0.1.0-cpu .
# GPU image (CUDA build of the same torch version; the host only needs the NVIDIA driver):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#     -t registry.example.org/geoslide:0.1.0-cu128 .
# The Helm chart runs it as uid/gid 10001 with a read-only root filesystem; /tmp is an emptyDir there.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
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

FROM ${PYTHON_IMAGE}
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
