# The cmg container image: the one static binary on an empty (scratch) base,
# running as a non-root user (65532), with a HEALTHCHECK on the admin /healthz.
#
#   docker build -t cmg:dev .
#   docker run --rm cmg:dev version
#   docker run -d -v /etc/cmg:/etc/cmg:ro -p 443:443 -p 10140:10140 cmg:dev   # gateway -config /etc/cmg/gateway.yaml
#   docker run -d -e CMG_HEALTHCHECK_URL=http://127.0.0.1:9200/healthz -v /etc/cmg:/etc/cmg:ro cmg:dev connector -config /etc/cmg/connector.yaml
#
# Reproducible: CGO off, -trimpath, -buildvcs=false, no build id, the version
# and commit stamped by -X, every file's time set to SOURCE_DATE_EPOCH. The
# binary is byte-identical to the one scripts/build-release builds with the same
# VERSION, COMMIT and Go (scripts/test-packaging checks it).
#
# The base images are build arguments, so that a build needs no registry:
#   GO_IMAGE       any image with Go 1.27.3 on PATH, a POSIX shell and CA
#                  certificates (default the official golang image)
#   RUNTIME_IMAGE  the final base (default scratch; gcr.io/distroless/static works too)
# scripts/test-packaging builds a local GO_IMAGE (busybox + this machine's Go).

ARG GO_IMAGE=golang:1.27.3-bookworm
ARG RUNTIME_IMAGE=scratch

FROM ${GO_IMAGE} AS build
ARG VERSION=dev
ARG COMMIT=unknown
ARG SOURCE_DATE_EPOCH=0
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-mod=readonly GOTOOLCHAIN=local
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X github.com/cmg-gateway/cmg/version.Version=${VERSION} -X github.com/cmg-gateway/cmg/version.Commit=${COMMIT}" \
      -o /rootfs/usr/bin/cmg ./cmd/cmg \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/etc/cmg /rootfs/var/lib/cmg /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/cmg:/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group \
 && chown 65532:65532 /rootfs/var/lib/cmg \
 && chmod 1777 /rootfs/tmp \
 && find /rootfs -exec touch -d "@${SOURCE_DATE_EPOCH}" {} +

FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG COMMIT=unknown
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="cmg" \
      org.opencontainers.image.description="cmg cloud management gateway: gateway, connector and tools in one static binary" \
      org.opencontainers.image.source="https://github.com/cmg-gateway/cmg" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
USER 65532:65532
WORKDIR /var/lib/cmg
# 443: devices and HTTPS tunnels; 10140+i: TCP-TLS tunnel of instance i;
# 10124+i: HTTPS tunnel of instance i when the service has several; 9100: the
# gateway's admin listener (a connector's is 9200). Binding 443 as non-root works
# on Docker's own networks (unprivileged ports from 0); with --network host, use
# another port or grant the capability.
EXPOSE 443/tcp 10140/tcp 10124/tcp 9100/tcp
# CMG_HEALTHCHECK_URL overrides the URL (a connector: http://127.0.0.1:9200/healthz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["/usr/bin/cmg", "healthcheck"]
ENTRYPOINT ["/usr/bin/cmg"]
CMD ["gateway", "-config", "/etc/cmg/gateway.yaml"]
