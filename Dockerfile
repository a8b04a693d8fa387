# affectstream CPU image: runtime dependencies only (no torch).
# The service entry point (`affectstream serve`, token, HEALTHCHECK) arrives with the service;
# until then the image runs any verb, e.g. `docker run --network host IMAGE replay /data/s01.dat`.
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
