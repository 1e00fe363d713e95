# swigapp container image: `docker run swigapp /bids /out participant`. Not yet built in
# CI: the distribution issue adds the podman build and run checks.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/swigapp
ENV PATH=/opt/swigapp/bin:$PATH
ARG TORCH_SPEC="torch==2.13.0"
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir "${TORCH_SPEC}"
COPY pyproject.toml README.md /src/
COPY swigapp /src/swigapp
COPY workflows /src/workflows
RUN pip install --no-cache-dir /src

FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 swigapp
COPY --from=build /opt/swigapp /opt/swigapp
ENV PATH=/opt/swigapp/bin:$PATH \
    HOME=/home/swigapp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TEMPLATEFLOW_HOME=/home/swigapp/.cache/templateflow \
    NIPYPE_NO_ET=1 \
    SWIGAPP_CONTAINER=swigapp
USER swigapp
WORKDIR /home/swigapp
ENTRYPOINT ["swigapp"]
