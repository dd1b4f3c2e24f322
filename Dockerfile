# syntax=docker/dockerfile:1
# The Palisade image: `docker build -t palisade .` at the repo root (deploy/daemonset.yaml runs it).
#
# Runtime: distroless cc (Debian 12) — glibc and libgcc as the bookworm builder linked against, CA
# certificates and tzdata, and nothing else: no shell, no package manager (smaller than
# debian:bookworm-slim, and less to patch or to misuse on a node-privileged pod). The agent
# needs no tool in the image (it speaks nf_tables netlink itself, no `nft`); to look around a
# running agent, use `kubectl debug`. The default tag runs as root (uid 0), which the agent needs
# for the host folders it writes; `:nonroot` would not do.

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and build folder between builds; the binary is copied out
# of the cached target folder in the same step. Debug info is stripped (symbols stay, for
# backtraces): the release profile keeps line tables for profiling.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p palisade \
    && install -D -m 0755 target/release/palisade /out/palisade \
    && strip --strip-debug /out/palisade

FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/palisade /usr/local/bin/palisade
ENTRYPOINT ["/usr/local/bin/palisade"]
