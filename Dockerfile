# swigapp container image: `docker run swigapp /bids /out participant`.
#   docker build -t swigapp .                              GPU (CUDA torch from PyPI)
#   docker build --build-arg TORCH_VARIANT=cpu -t swigapp .  CPU only (smaller)
# A torch wheel placed in docker/wheels/ is installed instead of downloading one.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/swigapp
ENV PATH=/opt/swigapp/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cuda
RUN --mount=type=bind,source=docker/wheels,target=/wheels \
    if ls /wheels/torch-*.whl > /dev/null 2>&1; then \
        pip install /wheels/torch-*.whl; \
    elif [ "${TORCH_VARIANT}" = "cpu" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi
COPY pyproject.toml README.md /src/
COPY swigapp /src/swigapp
COPY workflows /src/workflows
RUN pip install /src

FROM ${BASE_IMAGE}
ARG VERSION=0.4.0
LABEL org.opencontainers.image.title="swigapp" \
      org.opencontainers.image.description="Physics-informed, weighted-image-guided super-resolution of quantitative MRI (BIDS App)" \
      org.opencontainers.image.source="https://github.com/swigapp/swigapp" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 swigapp
COPY --from=build /opt/swigapp /opt/swigapp
ENV PATH=/opt/swigapp/bin:$PATH \
    HOME=/home/swigapp \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    TEMPLATEFLOW_HOME=/home/swigapp/.cache/templateflow \
    NIPYPE_NO_ET=1 \
    SWIGAPP_CONTAINER=swigapp:${VERSION}
USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["swigapp"]
