# The compose stack's nats-server: Debian's, from the SDP base image
# (packaging/images/make-base-image.sh), with docker/nats.conf
# (JetStream in /data, no auth: see docs/COMPOSE.md).
ARG BASE_IMAGE=sdp-base:bookworm

# See docker/sdp.Dockerfile: stops the build, naming the step, until
# scripts/compose.sh prepare has run.
FROM scratch AS prepared
COPY target/sdp-compose/run-scripts-compose.sh-prepare-first /prepared

FROM ${BASE_IMAGE}
COPY --from=prepared /prepared /usr/share/sdp/compose-prepared
COPY docker/nats.conf /etc/nats/nats.conf
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["nats-server", "-c", "/etc/nats/nats.conf"]
