# wh — common tasks. `make` builds, `make test` runs every test that this
# machine can run (the network-namespace tests need root and skip without it).

# sudo resets PATH to one without Go's usual home: add it back.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Packages whose tests run under the race detector (the ones with goroutines).
RACE_PKGS := ./key/... ./wire/... ./netsim/... ./dht/... ./tunnel/... ./node/... ./nat/... ./relay/... ./resolver/... ./socks5/...

.PHONY: all build deps test unit race lint e2e demo bench fuzz clean docker

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/wh ./cmd/wh
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/0nc ./tools/0nc

# The Docker images whnet/wh and whnet/sandbox, tagged $(VERSION) and latest,
# with nothing pulled (docker/build.sh says how). 0nc goes in when the tree
# has it. IMAGE_PREFIX=me/ names them me/wh and me/sandbox.
IMAGE_PREFIX ?= whnet/
docker:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/static/wh ./cmd/wh
	if [ -d tools/0nc ]; then CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/static/0nc ./tools/0nc; fi
	docker/build.sh '$(VERSION)' $(BIN)/static $(BIN)/cache '$(IMAGE_PREFIX)'

# The tools the namespace tests, the demo and the benchmarks run (apt-get, as root).
deps:
	@scripts/deps.sh

# The test command of the README and of CI.
test: deps lint race unit

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 $$($(GO) list $(RACE_PKGS) 2>/dev/null)

unit:
	$(GO) test -count=1 ./...

# End-to-end tests in network namespaces with real wh processes (root).
e2e:
	$(GO) test -count=1 -v ./e2e/

# Short runs of every fuzz target (each FUZZTIME long).
FUZZTIME ?= 10s
fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
	  done; \
	done

# Every benchmark, each printing its figures against a baseline measured in
# the same run (these machines are shared and noisy). The namespace ones
# need root and iperf3, dnsperf and dnsmasq (.ci/run installs them).
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 1s ./key/ ./wire/ ./relay/ ./tunnel/
	$(GO) run ./tools/whsim -nodes 10000 -lookups 1000
	$(GO) run ./bench/tunnel -t 10 -runs 3
	$(GO) run ./bench/userspace -t 10 -runs 3
	$(GO) run ./bench/node -wh $(BIN)/wh
	$(GO) run ./bench/nat -wh $(BIN)/wh
	$(GO) run ./bench/flood -wh $(BIN)/wh
	$(GO) run ./bench/dns

clean:
	rm -rf $(BIN)

# A local demo network: a boot node and two nodes in namespaces (root).
# DEMO_HOLD=10m keeps it up (Ctrl-C ends it).
DEMO_HOLD ?= 0
demo: deps build
	$(GO) run ./tools/demo -wh $(BIN)/wh -hold $(DEMO_HOLD)
