# The garden's image for GPUs on Kubernetes: Ray's LLM image at the Ray version
# model-garden pins (pyproject.toml, and the chart's rayVersion), with
# model-garden installed from this checkout with its `gpu` extra.
#
#   make image                      # model-garden:<version>, the chart's default
#   make image IMAGE=registry.example.com/ml/model-garden:0.1.0
#   docker push registry.example.com/ml/model-garden:0.1.0
#
# rayproject/ray-llm images are tagged <ray version>-<python>-<cuda>; `-gpu`
# is the default CUDA build. Pick a -cuXXX tag for other drivers with
# `--build-arg BASE_TAG=...`, keeping the Ray version.
ARG RAY_VERSION=2.60.0
ARG BASE_TAG=${RAY_VERSION}-py312-gpu
FROM rayproject/ray-llm:${BASE_TAG}

WORKDIR /home/ray/model-garden
# The package's sources only: the chart, tests and docs are not needed in a pod.
COPY --chown=ray pyproject.toml README.md ./
COPY --chown=ray cluster ./cluster
COPY --chown=ray deployments ./deployments
COPY --chown=ray router ./router
COPY --chown=ray autoscaling ./autoscaling
COPY --chown=ray loadtest ./loadtest
# ray[serve,llm] is the base image's own Ray (same pin): pip keeps it.
RUN pip install --no-cache-dir ".[gpu]" \
    && python -c "import cluster, router, deployments, autoscaling; print('model-garden ok')"
