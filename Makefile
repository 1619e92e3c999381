# Atoll. `make run` starts everything in one process; `make test` runs the
# whole test suite, installing the real Prometheus, promtool and S3 server it uses.

GO          ?= go
GOBIN       ?= $(shell $(GO) env GOPATH)/bin
BIN         := bin/atoll
PROMETHEUS_VERSION := v0.316.0
VERSITYGW_VERSION  := v1.8.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS     := -X main.buildVersion=$(VERSION) -X main.buildRevision=$(REVISION)
# Tests bound their own time; this is the backstop for a hung suite.
TEST_TIMEOUT ?= 15m
FUZZTIME    ?= 60s

.PHONY: all build run test test-race lint vet fmt fuzz bench tools proto docker clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/atoll

run: build
	./$(BIN) all

# Fuzz seed corpora run as ordinary tests here; `make fuzz` explores.
test: tools
	$(GO) vet ./...
	PATH="$(GOBIN):$$PATH" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-race: tools
	PATH="$(GOBIN):$$PATH" $(GO) test -race -count=1 -timeout 30m ./...

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./ingest

# Go micro-benchmarks of the hot paths; the load harnesses are bench-* below.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./ingest ./tsdbshard ./ring ./querier ./dedup ./storegateway

# The real programs tests run against, cached in GOPATH/bin; memcached (for
# the query-frontend's results cache) is Debian's package.
tools: $(GOBIN)/prometheus $(GOBIN)/promtool $(GOBIN)/versitygw memcached

.PHONY: memcached
memcached:
	@command -v memcached >/dev/null || { \
		echo "memcached missing: installing Debian's package"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached; }

$(GOBIN)/prometheus:
	$(GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION)

$(GOBIN)/promtool:
	$(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)

$(GOBIN)/versitygw:
	$(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler"; exit 1; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH="$(GOBIN):$$PATH" protoc -I storeapi/storepb --go_out=paths=source_relative:storeapi/storepb \
		--go-grpc_out=paths=source_relative:storeapi/storepb storeapi/storepb/store.proto
	PATH="$(GOBIN):$$PATH" protoc -I ingest/writepb --go_out=paths=source_relative:ingest/writepb \
		--go-grpc_out=paths=source_relative:ingest/writepb ingest/writepb/write.proto

clean:
	rm -rf bin

-include bench/Makefile.inc
-include bench/store/Makefile.inc
-include bench/compact/Makefile.inc
-include bench/cluster/Makefile.inc
-include bench/frontend/Makefile.inc
-include deploy/Makefile.inc
