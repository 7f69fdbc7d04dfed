# The pushgateway as a hardened image: one static binary on an empty base, run as nonroot
# (UID/GID 65532), with no shell and no package manager, Debian's CA certificates, its SBOMs
# (CycloneDX and SPDX) and its build provenance. Dockerfile.fips is the same with the FIPS 140-3
# build; keep the two files parallel (a diff between them shows only FIPS parts).
#
#   docker build -t pushgateway .                          the runtime image (the last stage)
#   docker build --target dev -t pushgateway:dev .         the dev variant: Debian, shell, apt, root
#   docker build --target attestations -o dist .           the SBOMs and provenance, as files
#   docker run -p 9091:9091 -v pushgateway-data:/data pushgateway --persistence.file=/data/metrics
#   scripts/verify-image pushgateway                       what a compliance team checks
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 with Docker 20.10) for
# the cache mounts. There is deliberately no `# syntax=` line: the builder's built-in Dockerfile
# frontend suffices, so no frontend image has to be pulled from a registry.
#
# The binary is static-pie against glibc rather than musl: the AWS-LC FIPS module's validation
# is tied to the operating environments in its security policy, against which a musl build would
# need checking (and both images are built the same way); glibc's allocator serves a
# multi-threaded server better than musl's; and the Rust image ships the glibc target, so nothing
# has to be downloaded besides crates. The binary resolves host names through /etc/hosts and DNS
# without NSS modules, which is all it needs.

# Any Debian-based Rust image with gcc, binutils and libc6-dev (the official images have them).
ARG RUST_IMAGE=rust:1.95.0-bookworm
# The dev variant's base: the same Debian release as the build stage.
ARG DEV_IMAGE=debian:bookworm-slim
# Build facts for --version, pushgateway_build_info, the labels and the provenance: the context
# has no .git. VERSION must equal Cargo.toml's.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG BRANCH=unknown
ARG SOURCE_URL=unknown
ARG LICENSES=NOASSERTION

FROM ${RUST_IMAGE} AS build

# The SBOM generator is built before anything of ours is copied, so that this layer is reused
# across source changes and, being the same in both Dockerfiles, across both images. A debug
# build: it runs once per image, and compiles in half the time.
ARG CARGO_CYCLONEDX_VERSION=0.5.9
RUN --mount=type=cache,id=pushgateway-cargo-registry,target=/usr/local/cargo/registry \
    cargo install --debug --locked --root /opt/cargo-cyclonedx "cargo-cyclonedx@${CARGO_CYCLONEDX_VERSION}"

# Debian's CA certificates, which the image ships, and jq, which writes the attestations.
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates jq && \
    rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The workspace's other member (the benchmark harness) must be present for cargo to load the
# workspace and check Cargo.lock; only the gateway is built.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY bench/Cargo.toml bench/Cargo.toml
COPY bench/src bench/src
COPY docker/build-binary.sh /usr/local/bin/build-binary

ARG VERSION
ARG REVISION
ARG BRANCH
ARG SOURCE_DATE_EPOCH
# The registry and target caches are shared by both Dockerfiles: most crates compile the same
# with and without the fips feature, so the second image only rebuilds the crypto crates.
RUN --mount=type=cache,id=pushgateway-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pushgateway-target,target=/src/target,sharing=locked \
    build-binary

# For the provenance only, so that they do not invalidate the build above: where the sources
# come from, and the builder image's digest (e.g. `docker image inspect -f '{{.Id}}'`, or the
# digest it was pulled by).
ARG SOURCE_URL
ARG LICENSES
ARG RUST_IMAGE
ARG RUST_IMAGE_DIGEST=
COPY docker/image-outputs.sh /usr/local/bin/image-outputs
RUN --mount=type=cache,id=pushgateway-cargo-registry,target=/usr/local/cargo/registry \
    image-outputs

# The dev variant: the same binary and documents on Debian, with a shell and apt, run as root;
# for debugging, and as a base to build on.
FROM ${DEV_IMAGE} AS dev

ARG VERSION
ARG REVISION
ARG SOURCE_URL
ARG LICENSES
LABEL org.opencontainers.image.title="pushgateway-dev" \
      org.opencontainers.image.description="Prometheus Pushgateway drop-in replacement in Rust, dev variant: the runtime image's binary on Debian with a shell and apt, run as root" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      pushgateway.variant="dev" \
      pushgateway.compliance="" \
      pushgateway.fips="false" \
      pushgateway.sbom="/usr/share/doc/pushgateway/sbom.cdx.json" \
      pushgateway.sbom.spdx="/usr/share/doc/pushgateway/sbom.spdx.json" \
      pushgateway.provenance="/usr/share/doc/pushgateway/provenance.json"

COPY --from=build /image/common/ /
COPY --from=build /image/runtime/bin/pushgateway /usr/bin/pushgateway
USER root
WORKDIR /data
EXPOSE 9091
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/bin/pushgateway", "healthcheck"]
ENTRYPOINT ["/usr/bin/pushgateway"]

# The attestations as build output files: docker build --target attestations -o DIR .
FROM scratch AS attestations
COPY --from=build /image/common/usr/share/doc/pushgateway/ /

# The runtime image, the default target.
FROM scratch AS runtime

ARG VERSION
ARG REVISION
ARG SOURCE_URL
ARG LICENSES
LABEL org.opencontainers.image.title="pushgateway" \
      org.opencontainers.image.description="Prometheus Pushgateway drop-in replacement in Rust: static binary, nonroot 65532, no shell" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.base.name="scratch" \
      pushgateway.variant="runtime" \
      pushgateway.compliance="" \
      pushgateway.fips="false" \
      pushgateway.sbom="/usr/share/doc/pushgateway/sbom.cdx.json" \
      pushgateway.sbom.spdx="/usr/share/doc/pushgateway/sbom.spdx.json" \
      pushgateway.provenance="/usr/share/doc/pushgateway/provenance.json"

# Ownership comes along from the build stage: /data belongs to 65532 and group 0, everything
# else to root.
COPY --from=build /image/common/ /
COPY --from=build /image/runtime/ /
USER 65532:65532
# Relative --persistence.file paths land on the volume.
WORKDIR /data
EXPOSE 9091
# The probe finds the gateway's address, route prefix and TLS settings in PID 1's flags.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/bin/pushgateway", "healthcheck"]
ENTRYPOINT ["/bin/pushgateway"]
