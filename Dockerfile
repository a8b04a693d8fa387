# affectstream CPU image: runtime dependencies only (no torch), the shipped models included.
# Runs any verb, e.g. `docker run --network host IMAGE serve --host 0.0.0.0` (with
# AFFECTSTREAM_TOKEN set: a non-loopback bind needs a token). The hardened service image (token
# required by default, HEALTHCHECK, GPU variant, compose demo) is issue #9 and not done yet.
# LSL discovery between containers needs the host network (or multicast between them).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY streaming ./streaming
COPY models ./models
COPY training ./training
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 affectstream
COPY --from=build /install /usr/local
USER affectstream
WORKDIR /home/affectstream
ENTRYPOINT ["affectstream"]
CMD ["--help"]
