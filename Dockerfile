# moscow-time container image.
#
#   podman build -t docker.io/library/moscow-time:0.1.0 .     (or: docker build ...)
#   podman run -p 8000:8000 -v moscow-time-data:/data docker.io/library/moscow-time:0.1.0
#
# That name is what the Helm chart and k8s/ ask for (`moscow-time:0.1.0`, which a cluster's
# container runtime reads as docker.io/library/moscow-time:0.1.0); README.md's quick start loads
# it into minikube or kind. podman would name a bare `moscow-time:0.1.0` localhost/moscow-time.
#
# Two stages:
#   builder  the official Rust image, pinned to the project's toolchain (Cargo.toml
#            rust-version = "1.95"). The cargo registry and target/ live in cache
#            mounts, so a rebuild after a source change only recompiles this crate.
#            It also writes the CycloneDX SBOM of the Rust dependencies (below).
#   runtime  FROM scratch: the release binary, coreutils `cat` (so that
#            `kubectl exec <pod> -- cat visits` works as written), exactly the shared
#            libraries `ldd` lists for those two plus the loader, a passwd/group entry
#            for uid/gid 65532, and /data owned by 65532. No shell, no package manager.
#            The SBOM is at /usr/share/doc/moscow-time/sbom.cdx.json (CycloneDX JSON).
#
# Why the dynamic glibc binary plus copied libraries rather than a `+crt-static`
# build: the service resolves a headless Service name through getaddrinfo. Both
# variants were tried in an empty chroot against a DNS server on loopback, and both
# resolved (bookworm's glibc 2.36 has nss_files/nss_dns inside libc). Dynamic wins
# anyway: `cat` needs libc.so.6 regardless, glibc supports NSS, iconv and dlopen only
# in dynamic programs (static getaddrinfo is a link-time warning), and the libraries
# cost ~3 MB. scripts/test-container checks DNS resolution in the built image. The
# runtime image is ~9.5 MB.
#
# No `# syntax=` line: it would make BuildKit pull a frontend image; the built-in
# frontend of current Docker and podman/buildah both understand RUN --mount.

FROM docker.io/library/rust:1.95-bookworm AS builder

WORKDIR /build

# The SBOM generator: cargo-cyclonedx, the CycloneDX project's own cargo plugin, pinned and
# built from crates.io with its lock file. Its own layer, before the sources are copied, so it
# is compiled once per base image (several minutes on 2 cores when nothing is cached), not on
# every source change.
RUN --mount=type=cache,id=moscow-time-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    cargo install --locked cargo-cyclonedx@0.5.9

# .dockerignore keeps target/, .git, .tools, data, bench results etc. out of the context.
COPY . .

# Build, then assemble the runtime root file system in /rootfs; the binary has to be
# copied out inside this RUN because target/ is a cache mount. Plain POSIX sh with no
# pipes: podman's default OCI image format ignores SHELL, so `SHELL ["/bin/bash",
# "-o", "pipefail", "-c"]` could not be relied on. The two chroot calls at the end
# prove the copied libraries are complete.
RUN --mount=type=cache,id=moscow-time-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=moscow-time-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=moscow-time-target,target=/build/target,sharing=locked \
    set -eux; \
    cargo --version; \
    cargo build --release --locked --bin moscow-time; \
    cargo cyclonedx --quiet --format json --spec-version 1.5 --manifest-path Cargo.toml; \
    mkdir -p /rootfs/usr/local/bin /rootfs/usr/bin /rootfs/etc /rootfs/tmp /data-skel; \
    mkdir -p /rootfs/usr/share/doc/moscow-time; \
    cp moscow-time.cdx.json /rootfs/usr/share/doc/moscow-time/sbom.cdx.json; \
    cp target/release/moscow-time /rootfs/usr/local/bin/moscow-time; \
    cp /bin/cat /rootfs/usr/bin/cat; \
    ldd /rootfs/usr/local/bin/moscow-time /rootfs/usr/bin/cat > /tmp/ldd.txt; \
    cat /tmp/ldd.txt; \
    if grep 'not found' /tmp/ldd.txt; then exit 1; fi; \
    grep -o '/[^ ]*\.so[^ ]*' /tmp/ldd.txt > /tmp/libs.txt; \
    while read -r lib; do cp -L --parents "$lib" /rootfs/; done < /tmp/libs.txt; \
    echo 'root:x:0:0:root:/root:/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'nonroot:x:65532:65532:nonroot:/data:/sbin/nologin' >> /rootfs/etc/passwd; \
    echo 'root:x:0:' > /rootfs/etc/group; \
    echo 'nonroot:x:65532:' >> /rootfs/etc/group; \
    echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    chmod 1777 /rootfs/tmp; \
    chown 65532:65532 /data-skel; \
    chmod 0755 /data-skel; \
    find /rootfs -printf '%M %u:%g %8s %p\n'; \
    chroot /rootfs /usr/bin/cat /etc/passwd >/dev/null; \
    chroot /rootfs /usr/local/bin/moscow-time --help >/dev/null


FROM scratch AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# The repository URL; scripts/release passes the checkout's origin remote when it has one.
ARG SOURCE=unknown

LABEL org.opencontainers.image.title="moscow-time" \
      org.opencontainers.image.description="A durable visit counter that shows the current Moscow time" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="scratch"

# Everything but /data is root-owned and read-only for the service.
COPY --from=builder /rootfs/ /
# /data is created by this COPY (it is not in /rootfs), so --chown applies to the
# directory itself in BuildKit and buildah alike; a fresh named volume copies it up
# and is writable by 65532 (Kubernetes volumes get the same via fsGroup).
COPY --from=builder --chown=65532:65532 /data-skel /data

ENV PATH=/usr/local/bin:/usr/bin \
    DATA_DIR=/data

# The visit count is read and written relative to /data, so that
# `kubectl exec <pod> -- cat visits` works from the default working directory.
WORKDIR /data
VOLUME ["/data"]

USER 65532:65532

EXPOSE 8000

# The service drains in-flight requests and persists the last batch on SIGTERM
# (what Kubernetes and `podman stop` send), then exits 0.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/moscow-time"]
