# Build the alertbridge binary.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
# make docker-build passes the version and commit `alertbridge version` says.
ARG VERSION="(devel)"
ARG COMMIT=unknown
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY *.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath \
    -ldflags "-X github.com/alertbridge/alertbridge/internal/version.version=${VERSION} -X github.com/alertbridge/alertbridge/internal/version.commit=${COMMIT}" \
    -o alertbridge .

# Distroless, non-root: nothing in the image but the binary.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/alertbridge .
USER 65532:65532
ENTRYPOINT ["/alertbridge"]
