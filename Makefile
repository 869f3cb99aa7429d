# repolock — the two commands are `make demo` and `make test`.
# Pinned upstream binaries are built from their own tools modules into .bin/.

GO       ?= go
BIN      := $(CURDIR)/.bin
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# The first build of the pinned Consul resolves a module that is not in the
# checksum database; once go.sum is committed this changes nothing.
export GONOSUMDB := github.com/hashicorp/consul-awsauth

.PHONY: all build tools consul restic nomad consul-template borg prometheus-tools debian-borg licenses test vet fmt-check unit bench soak demo fuzz clean

all: build

build: $(BIN)/repolock

$(BIN)/repolock: $(shell find cmd consullock plugin internal -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/repolock

$(BIN)/consul: tools/consul/go.mod tools/consul/go.sum
	cd tools/consul && $(GO) build -o $@ github.com/hashicorp/consul

$(BIN)/restic: tools/restic/go.mod tools/restic/go.sum
	cd tools/restic && $(GO) build -o $@ github.com/restic/restic/cmd/restic

# Nomad carries the replaces of its own go.mod (tools/nomad/go.mod).
$(BIN)/nomad: tools/nomad/go.mod tools/nomad/go.sum
	cd tools/nomad && $(GO) build -o $@ github.com/hashicorp/nomad

$(BIN)/consul-template: tools/consul-template/go.mod tools/consul-template/go.sum
	cd tools/consul-template && $(GO) build -o $@ github.com/hashicorp/consul-template

consul: $(BIN)/consul
restic: $(BIN)/restic
nomad: $(BIN)/nomad
consul-template: $(BIN)/consul-template

# An operator's own binaries replace the pinned ones: CONSUL_BIN, NOMAD_BIN,
# CONSUL_TEMPLATE_BIN, RESTIC_BIN and BORG_BIN name them (a path, or a name
# on PATH), the tests, the bench and the demo use them, and make builds or
# installs none of what was given.
OWN_BINS := CONSUL_BIN NOMAD_BIN CONSUL_TEMPLATE_BIN RESTIC_BIN BORG_BIN
export $(OWN_BINS)
pinned = $(if $($(1)),,$(2))
TOOLS := $(call pinned,CONSUL_BIN,$(BIN)/consul) $(call pinned,RESTIC_BIN,$(BIN)/restic) \
	$(call pinned,NOMAD_BIN,$(BIN)/nomad) $(call pinned,CONSUL_TEMPLATE_BIN,$(BIN)/consul-template) \
	$(call pinned,BORG_BIN,borg)

# Consul builds `consul lock` too, which the benchmarks compare against.
tools: $(TOOLS) prometheus-tools

# Every fixture's licence, read from its module's LICENSE (and borg's Debian
# copyright file); fails on the Business Source License or AGPL anywhere in
# a fixture's build or in repolock's own. `make test` runs it too.
licenses: tools
	$(GO) test -count=1 -run '^TestLicenses$$' -v ./tools/

# node_exporter, the Pushgateway and promtool come from Debian's packages.
PROM_PKGS := prometheus-node-exporter prometheus-pushgateway prometheus
prometheus-tools:
	@missing=""; \
	for b in prometheus-node-exporter prometheus-pushgateway promtool; do \
		command -v $$b >/dev/null 2>&1 || missing=1; done; \
	if [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(PROM_PKGS) with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PROM_PKGS) >/dev/null; \
	else echo "node_exporter, pushgateway or promtool missing and apt-get is not available: install $(PROM_PKGS)" >&2; exit 1; fi

# borg 1.2 is Debian's borgbackup package (/usr/bin/borg); borg 1.4 is the
# bookworm-backports package unpacked into .bin/borg-1.4/, run against the
# same Python libraries (tools/borg/install.sh). The tests run both.
borg: debian-borg $(BIN)/borg-1.4/borg

debian-borg:
	@if [ -x /usr/bin/borg ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "installing borgbackup with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq borgbackup >/dev/null; \
	else echo "borg is missing and apt-get is not available: install borgbackup (1.2.x)" >&2; exit 1; fi

# Debian's borgbackup brings the Python libraries both borgs run on.
$(BIN)/borg-1.4/borg: tools/borg/install.sh | debian-borg
	tools/borg/install.sh $(BIN)/borg-1.4

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Packages run one at a time: the fault tests measure deadlines of a few
# hundred milliseconds and must not compete for the two cores.
test: tools build fmt-check vet
	$(GO) test -count=1 -p 1 -timeout 15m ./...

bench: tools build
	$(GO) test -run '^$$' -bench 'Compare|Scale|Datacenters' -benchtime 1x -timeout 30m ./bench/

# The soak: contenders and random faults on a 3-server cluster for $(SOAK)
# (`make test` runs a 40 s version); the table goes to bench/soak.md.
SOAK ?= 10m
soak: tools build
	REPOLOCK_SOAK=$(SOAK) REPOLOCK_SOAK_REPORT=$(CURDIR)/bench/soak.md $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 2h ./internal/soak/

demo: $(call pinned,CONSUL_BIN,$(BIN)/consul) $(call pinned,RESTIC_BIN,$(BIN)/restic) build
	./jobspecs/demo.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoadSource -fuzztime 60s ./internal/config/

clean:
	rm -rf $(BIN)
