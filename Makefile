# alertbridge — run `make help` for the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

K8S_VERSION ?= 1.37.2
# The oldest Kubernetes the install supports (Chart.yaml's kubeVersion);
# the install tests run on it too.
K8S_FLOOR_VERSION ?= 1.36.3
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
IMG ?= alertbridge:dev
# The namespace make build-installer puts the operator in.
NAMESPACE ?= alertbridge-system
# What `alertbridge version`, the start log and alertbridge_build_info say.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo "(devel)")
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/alertbridge/alertbridge/internal/version.version=$(VERSION) -X github.com/alertbridge/alertbridge/internal/version.commit=$(COMMIT)

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint
ENVTEST_ASSETS = $(shell K8S_VERSION=$(K8S_VERSION) hack/envtest-binaries.sh)
# Tool binaries are cached outside the clone too, so a fresh clone (CI)
# copies them instead of compiling them again.
TOOLS_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/alertbridge/tools

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and the ClusterRoles of the manager and the HTTP API (with each rule's reasons).
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=alertbridge-manager paths="./controllers/..." output:rbac:artifacts:config=config/rbac
	go run ./hack/rbacreasons config/rbac/role.yaml controllers
	$(CONTROLLER_GEN) rbac:roleName=alertbridge-api paths="./internal/httpapi/...;./internal/intake/..." output:rbac:artifacts:config=config/rbac/api
	go run ./hack/rbacreasons config/rbac/api/role.yaml internal/httpapi internal/intake

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

# What charts/alertbridge copies verbatim from config/ (see its README).
CHART := charts/alertbridge
.PHONY: chart
chart: manifests ## Copy the CRDs, ClusterRoles, admission policies and dashboards from config/ into the Helm chart.
	rm -rf $(CHART)/crds $(CHART)/files
	mkdir -p $(CHART)/crds $(CHART)/files/cluster $(CHART)/files/mirror $(CHART)/files/grafana $(CHART)/files/prometheus $(CHART)/files/flowcontrol
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml config/rbac/metrics_auth_role.yaml config/rbac/monitor_role.yaml config/rbac/agent_role.yaml \
	  config/rbac/oncall_role.yaml config/rbac/viewer_role.yaml config/admission/*_policy.yaml \
	  config/admission/operator_identity.yaml $(CHART)/files/cluster/
	cp config/rbac/api/role.yaml $(CHART)/files/cluster/api_role.yaml
	cp config/rbac/grants_roles.yaml $(CHART)/files/cluster/
	cp config/flowcontrol/flowcontrol.yaml $(CHART)/files/flowcontrol/
	cp config/components/mirror-finalizer/mirror_finalizer.yaml $(CHART)/files/mirror/
	cp config/grafana/alertbridge.json $(CHART)/files/grafana/
	cp config/prometheus/metrics_service.yaml config/prometheus/servicemonitor.yaml config/prometheus/prometheusrule.yaml $(CHART)/files/prometheus/

.PHONY: perfdoc
perfdoc: ## Write the latest benchmark results (test/bench/results/latest*.md) into docs/performance.md.
	go run ./hack/perfdoc

.PHONY: screenshot
screenshot: envtest ## Take docs/images/dashboard.png again with the dashboard's browser test (Chromium).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) ARTIFACTS_DIR=$(CURDIR)/tmp/screenshot go test -count=1 -run '^TestDashboardPageInABrowser$$' ./internal/httpapi/
	cp tmp/screenshot/dashboard.png docs/images/dashboard.png

.PHONY: docs
docs: ## Check the docs: every relative link and anchor resolves, and no file cites documents outside the project.
	go run ./hack/docscheck

.PHONY: verify
verify: manifests generate chart perfdoc vet lint docs ## Prove generated code, manifests, the chart's copies and the performance page are current, docs links resolve, and vet and lint are clean.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	@git diff --exit-code -- api config charts docs/performance.md || { echo "generated files are stale: run 'make manifests generate chart perfdoc' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- charts)" || { git status --porcelain -- charts; echo "the chart's copies of config/ are not committed: run 'make chart' and commit"; exit 1; }

.PHONY: envtest
envtest: ## Build (once) the kube-apiserver and etcd the tests run against.
	@K8S_VERSION=$(K8S_VERSION) hack/envtest-binaries.sh >/dev/null

.PHONY: envtest-floor
envtest-floor: ## Build (once) the kube-apiserver and etcd of the oldest Kubernetes supported, for the install tests.
	@K8S_VERSION=$(K8S_FLOOR_VERSION) hack/envtest-binaries.sh >/dev/null

.PHONY: test
test: envtest envtest-floor ## Run every test against a real kube-apiserver, etcd and PostgreSQL.
	hack/test.sh

.PHONY: fuzz
fuzz: ## Fuzz each fuzz target for a bounded time (FUZZTIME, default 30s).
	hack/fuzz.sh $(or $(FUZZTIME),30s)

.PHONY: bench
bench: envtest build ## Benchmark the shipped binary (two replicas, durable PostgreSQL); writes test/bench/results/ (not part of CI).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test -count=1 -run '^$$' -bench '^BenchmarkShipped$$' -benchtime=1x -timeout 60m ./test/bench/
	go run ./hack/perfdoc

.PHONY: bench-long
bench-long: envtest build ## make bench plus 10,000 live Alerts and a 10-minute "1M alerts a day" run (~35 min).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) BENCH_LONG=1 go test -count=1 -run '^$$' -bench '^BenchmarkShipped$$' -benchtime=1x -timeout 120m ./test/bench/
	go run ./hack/perfdoc

.PHONY: chaos
chaos: envtest build ## Seeded chaos run against the shipped binary (SEED, default 1; DURATION, default 5m; not part of CI).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) CHAOS_SEED=$(or $(SEED),1) CHAOS_DURATION=$(or $(DURATION),5m) \
		go test -count=1 -v -run '^TestChaos$$' -timeout 40m ./test/e2e/chaos/

.PHONY: chaos-many
chaos-many: envtest build ## N seeded chaos runs back to back (N, default 20; DURATION per seed, default 90s; SEED first seed, default 1).
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) hack/chaos-many.sh $(or $(N),20) $(or $(DURATION),90s) $(or $(SEED),1)

##@ Build

.PHONY: build
build: ## Build bin/alertbridge (also usable as kubectl-alertbridge).
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(LOCALBIN)/alertbridge .
	ln -sf alertbridge $(LOCALBIN)/kubectl-alertbridge

.PHONY: dev
dev: envtest build ## Run alertbridge locally: control plane + PostgreSQL + Prometheus + operator + samples + a webhook Receiver and its sink (EXIT_AFTER=5m stops it by itself).
	hack/ensure-packages.sh
	go run ./hack/dev -exit-after=$(or $(EXIT_AFTER),0)

.PHONY: run
run: build ## Run the controllers (alertbridge run) and the HTTP API (alertbridge serve, plain HTTP on loopback) against the current kubeconfig.
	$(LOCALBIN)/alertbridge run --health-probe-bind-address=127.0.0.1:18081 & pid=$$!; \
	  trap 'kill $$pid' EXIT; \
	  $(LOCALBIN)/alertbridge serve --api-insecure --api-bind-address=127.0.0.1:8090 --health-probe-bind-address=127.0.0.1:18082

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml (config/default as one file) for IMG and NAMESPACE.
	go run ./hack/build-installer -o dist/install.yaml -image $(IMG) -namespace $(NAMESPACE)

# make release: where the artifacts go, and the image (tagged VERSION) that
# install.yaml and the chart run.
RELEASE_DIR ?= dist/release/$(VERSION)
RELEASE_IMAGE ?= ghcr.io/alertbridge/alertbridge
# vMAJOR.MINOR.PATCH with an optional pre-release (hack/release checks the same).
SEMVER_RE := ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$$
.PHONY: release
release: ## Write the release artifacts of VERSION (e.g. VERSION=v0.2.0) to dist/release/VERSION (see docs/releasing.md).
	@if [ "$(origin VERSION)" = file ] || [ -z "$(VERSION)" ]; then \
	  echo "make release: VERSION is required, e.g. make release VERSION=v0.2.0" >&2; exit 2; fi
	@if ! grep -Eq '$(SEMVER_RE)' <<<'$(VERSION)'; then \
	  echo "make release: VERSION=$(VERSION) is not a semantic version like v1.2.3 (or v1.2.3-rc.1)" >&2; exit 2; fi
	go run ./hack/release -version '$(VERSION)' -commit '$(COMMIT)' -date "$$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
	  -image-repo '$(RELEASE_IMAGE)' -namespace '$(NAMESPACE)' -o '$(RELEASE_DIR)'

.PHONY: docker-build
docker-build: ## Build the container image.
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMG) .

.PHONY: deploy
deploy: manifests ## Deploy to the cluster of the current kubeconfig.
	kubectl apply --server-side -k config/default

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	@hack/tool.sh $@ sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_TOOLS_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	@hack/tool.sh $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint $(GOLANGCI_LINT_VERSION)
