# The pushgateway as a hardened image: one static binary on an empty base, run as nonroot
# (UID/GID 65532), with no shell and no package manager. Dockerfile.fips is the same with the
# FIPS 140-3 build; keep the two files parallel (a diff between them shows only FIPS parts).
#
#   docker build -t pushgateway .
#   docker run -p 9091:9091 -v pushgateway-data:/data pushgateway --persistence.file=/data/metrics
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

FROM ${RUST_IMAGE} AS build

# The SBOM generator is built before anything of ours is copied, so that this layer is reused
# across source changes and, being the same in both Dockerfiles, across both images. A debug
# build: it runs once per image, and compiles in half the time.
ARG CARGO_CYCLONEDX_VERSION=0.5.9
RUN --mount=type=cache,id=pushgateway-cargo-registry,target=/usr/local/cargo/registry \
    cargo install --debug --locked --root /opt/cargo-cyclonedx "cargo-cyclonedx@${CARGO_CYCLONEDX_VERSION}"

WORKDIR /src
# The workspace's other member (the benchmark harness) must be present for cargo to load the
# workspace and check Cargo.lock; only the gateway is built.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY bench/Cargo.toml bench/Cargo.toml
COPY bench/src bench/src

# Build facts for --version, pushgateway_build_info and the labels: the context has no .git.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG BRANCH=unknown
ARG SOURCE_DATE_EPOCH
# The registry and target caches are shared by both Dockerfiles: most crates compile the same
# with and without the fips feature, so the second image only rebuilds the crypto crates.
RUN --mount=type=cache,id=pushgateway-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pushgateway-target,target=/src/target,sharing=locked \
    set -eu; \
    crate_version=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { print $2; exit }' Cargo.toml); \
    if [ "$crate_version" != "$VERSION" ]; then \
        echo "Cargo.toml says version $crate_version, the VERSION build argument says $VERSION: update the default in this file or pass --build-arg VERSION=$crate_version" >&2; \
        exit 1; \
    fi; \
    target=$(rustc -vV | sed -n 's/^host: //p'); \
    # An explicit --target keeps +crt-static away from build scripts and proc macros. Whole-program
    # optimisation makes the binary about 10% smaller for about the same build time.
    PUSHGATEWAY_REVISION=$(printf '%.12s' "$REVISION") \
    PUSHGATEWAY_BRANCH="$BRANCH" \
    PUSHGATEWAY_BUILD_USER=docker \
    RUSTFLAGS='-C target-feature=+crt-static' \
    CARGO_PROFILE_RELEASE_LTO=fat \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
        cargo build --release --locked -p pushgateway --bin pushgateway --target "$target"; \
    binary="target/$target/release/pushgateway"; \
    if readelf -lW "$binary" | grep -q INTERP || readelf -dW "$binary" | grep -q NEEDED; then \
        echo "$binary is not static" >&2; exit 1; \
    fi; \
    mkdir -p /rootfs/bin /rootfs/etc /rootfs/data /rootfs/usr/share/doc/pushgateway; \
    strip --strip-all -o /rootfs/bin/pushgateway "$binary"; \
    /opt/cargo-cyclonedx/bin/cargo-cyclonedx cyclonedx --format json --spec-version 1.5 \
        --target "$target" --no-build-deps --override-filename sbom; \
    mv sbom.json /rootfs/usr/share/doc/pushgateway/sbom.cdx.json; \
    rm -f bench/sbom.json

RUN printf 'nonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' > /rootfs/etc/passwd && \
    printf 'nonroot:x:65532:\n' > /rootfs/etc/group && \
    chmod 0644 /rootfs/etc/passwd /rootfs/etc/group /rootfs/usr/share/doc/pushgateway/sbom.cdx.json && \
    chown 65532:65532 /rootfs/data && \
    chmod 0750 /rootfs/data

FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=unknown
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="pushgateway" \
      org.opencontainers.image.description="Prometheus Pushgateway drop-in replacement in Rust: static binary, nonroot 65532, no shell" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.base.name="scratch" \
      pushgateway.fips="false" \
      pushgateway.sbom="/usr/share/doc/pushgateway/sbom.cdx.json"

# Ownership comes along from the build stage: /data belongs to 65532, everything else to root.
COPY --from=build /rootfs/ /
USER 65532:65532
# Relative --persistence.file paths land on the volume.
WORKDIR /data
EXPOSE 9091
ENTRYPOINT ["/bin/pushgateway"]
