# One SDP binary (control plane, an agent, or the demo git server) of the
# compose stack, built on the host (cargo build --workspace --bins) and
# copied onto the SDP base image (packaging/images/make-base-image.sh).
# Nothing is compiled or downloaded here. Context: the repository root,
# which .dockerignore cuts down to the binaries and the marker below.
# Runs: tini as PID 1 (signals, reaps `go build` children), then the
# command compose gives.
ARG BASE_IMAGE=sdp-base:bookworm

# scripts/compose.sh prepare writes this marker once the binaries and the
# base images exist: without it the build stops here, naming the step.
FROM scratch AS prepared
COPY target/sdp-compose/run-scripts-compose.sh-prepare-first /prepared

FROM ${BASE_IMAGE}
ARG SDP_BIN_DIR=target/debug
ARG BINARY
COPY --from=prepared /prepared /usr/share/sdp/compose-prepared
COPY ${SDP_BIN_DIR}/${BINARY} /usr/local/bin/${BINARY}
ENTRYPOINT ["/usr/bin/tini", "--"]
