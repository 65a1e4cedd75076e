# Berth build, test and demo entry points. See README.md.
SHELL := /bin/bash
GO ?= go
# VERSION is Berth's one version (scripts/version.sh, from the git tags):
# stamped into the binaries, which send it in registration and the ACS/TCS
# handshakes and show it at /v1/metadata, and given to the packages.
VERSION := $(shell ./scripts/version.sh)
LDFLAGS := -X github.com/berth-dev/berth/internal/version.Version=$(VERSION)
GOTEST_FLAGS ?= -count=1 -timeout 15m
# Integration tests share one private containerd and registries, started by the
# testenv runner around the whole `go test` run (see docs/testing.md). The
# runner is built first rather than used through `go run`, which would turn
# every failing exit status into 1 and stand between it and signals.
TESTENV_BIN := bin/berth-testenv
TESTENV := $(TESTENV_BIN) --

.PHONY: all build test test-deps demo-deps vet unit lint bench bench-peers demo clean fuzz version console-assets console-firefox console-screenshots chaos

all: build

# console-assets: the web console's browser libraries (htmx, uPlot), fetched
# by npm at the versions and integrity hashes pinned in
# pkg/cluster/console/web/package-lock.json, their dist files (and licences)
# copied into pkg/cluster/console/static/vendor, which go:embed takes into
# berth-cluster and berth-agent. Fetched build output, so not committed;
# redone only when the lock file changes (docs/console.md).
CONSOLE_WEB := pkg/cluster/console/web
CONSOLE_VENDOR := pkg/cluster/console/static/vendor
console-assets: $(CONSOLE_VENDOR)/.stamp

$(CONSOLE_VENDOR)/.stamp: $(CONSOLE_WEB)/package.json $(CONSOLE_WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "console-assets: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
	cd $(CONSOLE_WEB) && npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(CONSOLE_VENDOR)
	cp $(CONSOLE_WEB)/node_modules/htmx.org/dist/htmx.min.js $(CONSOLE_VENDOR)/htmx.min.js
	cp $(CONSOLE_WEB)/node_modules/htmx.org/LICENSE $(CONSOLE_VENDOR)/htmx.LICENSE
	cp $(CONSOLE_WEB)/node_modules/uplot/dist/uPlot.iife.min.js $(CONSOLE_WEB)/node_modules/uplot/dist/uPlot.min.css $(CONSOLE_VENDOR)/
	cp $(CONSOLE_WEB)/node_modules/uplot/LICENSE $(CONSOLE_VENDOR)/uPlot.LICENSE
	touch $@

# console-firefox: puppeteer-core for the console's Firefox test
# (TestFirefox drives Debian's firefox-esr over WebDriver BiDi), installed by
# npm at the version and integrity hashes pinned in
# pkg/cluster/console/testdata/firefox/package-lock.json; not committed,
# redone only when the lock file changes.
CONSOLE_FIREFOX := pkg/cluster/console/testdata/firefox
console-firefox: $(CONSOLE_FIREFOX)/node_modules/.stamp

$(CONSOLE_FIREFOX)/node_modules/.stamp: $(CONSOLE_FIREFOX)/package.json $(CONSOLE_FIREFOX)/package-lock.json
	@command -v npm >/dev/null || { echo "console-firefox: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
	cd $(CONSOLE_FIREFOX) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# console-screenshots: the console's pages at 1280x800 into docs/console/
# (shown in README.md and docs/console.md), taken by TestScreenshots in
# headless Chromium against a real endpoint.
console-screenshots: console-assets
	BERTH_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test ./pkg/cluster/console -run '^TestScreenshots$$' -count=1

build: console-assets
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/berth-agent ./cmd/agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/berth-logd ./cmd/logd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/berth-cluster ./cmd/cluster
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/berth-lb ./cmd/lb

# test-deps, demo-deps: the Debian packages that make test (and bench) and
# make demo need, installed where missing (scripts/deps.sh).
test-deps:
	./scripts/deps.sh test

demo-deps:
	./scripts/deps.sh demo

version:
	@echo $(VERSION)

vet:
	$(GO) vet ./...

# test: installs what is missing, vets, then runs every test (unit and integration)
# with the race detector against a private containerd and registry.
test: test-deps console-assets console-firefox vet build
	$(GO) build -o $(TESTENV_BIN) ./internal/testenv/cmd/berth-testenv
	$(TESTENV) $(GO) test -race $(GOTEST_FLAGS) ./...

# unit: only tests that need no containerd or registry; with -short, testenv
# skips every test that asks for one.
unit: console-assets
	$(GO) test -race $(GOTEST_FLAGS) -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# chaos: the fault-injection suite in full (test/chaos, docs/reliability.md):
# the built berth-cluster and berth-agent on a containerd of their own, in a
# private mount and network namespace; 25 kill -9s of the agent while tasks
# start and stop, containerd killed for 10 s, the endpoint down for 45 s,
# containers killed from the host, the invariants checked after each fault.
# CHAOS_RUNS runs one after another. Root; about 5 minutes a run. `make test`
# runs its short version (4 kills, 5 s, 10 s). BERTH_CHAOS_SEED=N replays a
# run's random choices (each run logs its seed).
CHAOS_RUNS ?= 1
chaos: test-deps
	BERTH_CHAOS=full $(GO) test -count=$(CHAOS_RUNS) -timeout 0 -v -run '^TestChaos$$' ./test/chaos

# fuzz: each fuzz target for FUZZTIME (their seed corpora also run in `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./pkg/config -run '^$$' -fuzz FuzzParseEnvFile -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/api -run '^$$' -fuzz FuzzDecodeFrame -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/api -run '^$$' -fuzz FuzzDecodeDockerConfig -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/cluster/ecsapi -run '^$$' -fuzz FuzzRequestDecoding -fuzztime $(FUZZTIME)

# bench: every benchmark of docs/benchmarks.md, each against its raw baseline
# in the same run (root; the programs under bench/cmd start their own
# containerd, the Go benchmarks use the testenv runner's).
bench: test-deps build
	$(GO) build -o $(TESTENV_BIN) ./internal/testenv/cmd/berth-testenv
	$(TESTENV) $(GO) test ./bench -run '^$$' -bench 'BenchmarkState' -benchtime 2s
	$(TESTENV) $(GO) test ./bench -run '^$$' -bench 'BenchmarkNetwork' -benchtime 30x -count 2
	$(TESTENV) $(GO) test ./bench -run '^$$' -bench 'BenchmarkCluster' -benchtime 3s -count 3
	$(TESTENV) $(GO) test ./bench -run '^$$' -bench 'BenchmarkIAMCredentialsWrk' -benchtime 3x
	$(TESTENV) $(GO) test ./bench -run '^$$' -bench 'BenchmarkScheduler' -benchtime 3x
	$(TESTENV) $(GO) test ./bench -run '^$$' -bench 'Logship' -benchtime 3x
	$(GO) test ./bench -run '^$$' -bench 'BenchmarkMetrics' -benchtime 300x -count 2
	$(GO) test ./bench -run '^$$' -bench 'BenchmarkConsolePages' -benchtime 100x -count 2
	$(GO) test ./bench -run '^$$' -bench 'BenchmarkConsoleLiveUnderChurn' -benchtime 400x -count 2
	$(GO) test ./bench -run '^$$' -bench 'BenchmarkLBHAProxy' -benchtime 3x
	$(GO) run ./bench/cmd/runtime -n 40 -rounds 5
	$(TESTENV) $(GO) run ./bench/cmd/stats -n 100 -rounds 20
	$(GO) run ./bench/cmd/engine
	$(GO) run ./bench/cmd/e2e -rounds 5 -datapath builtin
	$(GO) run ./bench/cmd/e2e -rounds 5 -datapath cni

# bench-peers: time until a container's dynamic host port answers on raw
# containerd, containerd + CNI, Berth (dev mode), Docker and Podman, and their
# memory at 10 and 100 running containers (docs/benchmarks.md, "peers"). Root; installs
# docker.io and podman when missing; not part of `make bench` (it takes about
# 15 minutes and starts Docker and Podman). PEERS_FLAGS passes flags, e.g.
# PEERS_FLAGS='-engines raw,berth -rounds 3'. Built first, not `go run`, so
# that Ctrl-C reaches the program, which then cleans up.
PEERS_FLAGS ?=
bench-peers: test-deps build
	$(GO) build -o bin/bench-peers ./bench/cmd/peers
	bin/bench-peers -agent bin/berth-agent -cluster bin/berth-cluster $(PEERS_FLAGS)

# demo: dev mode end to end (scripts/demo.sh, docs/dev-mode.md); needs root.
# The script builds berth-agent and its tools itself (BERTH_DEMO_BIN).
demo: demo-deps
	GO=$(GO) ./scripts/demo.sh

clean:
	rm -rf bin dist

.PHONY: package
# package: .deb and .rpm of berth-agent, berth-cluster and berth-lb in $(DIST), at
# $(VERSION) (docs/install.md). nfpm is built with `go install` into a scratch directory. The
# binaries are built into their own directory so that a concurrent
# `make build` cannot swap them between build and packaging.
DIST ?= dist
PACKAGE_BIN ?= bin/package
package: console-assets
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PACKAGE_BIN)/berth-agent ./cmd/agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PACKAGE_BIN)/berth-logd ./cmd/logd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PACKAGE_BIN)/berth-cluster ./cmd/cluster
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PACKAGE_BIN)/berth-lb ./cmd/lb
	VERSION='$(VERSION)' BIN='$(PACKAGE_BIN)' DIST='$(DIST)' ./scripts/package.sh
