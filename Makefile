# archy: entry points. `make build`, `make test`, `make lint`, `make bench`, `make run`.
GO      ?= go
# The node talks to libpod over plain HTTP (orchestrator/podman), so no
# build tags are needed; e2e is the three-node end-to-end test's tag.
E2ETAGS := -tags e2e
BIN     := bin/archy

.PHONY: build calibrate demo e2e install test suite test-env unit lint bench bench-go benchstat kubo run fuzz fuzz-list images clean

build:
	$(GO) build -o $(BIN) ./cmd/archy
	$(GO) build -o $(BIN)-sim ./cmd/archy-sim

# Everything CI checks. The set-up comes first (as root: rootless Podman,
# busybox-static, nostr-tools), since building the sample images needs
# busybox; then lint, the whole suite with -race, the heavy flood tests
# and the simulator's calibration without it (the race detector makes the
# floods take minutes and moves the calibration's figures), the end-to-end
# test (make e2e: alone, as it runs the sample apps), short fuzzing.
# The suite runs from a copy the Podman user can read when that user
# cannot enter this checkout (a clone in /root, say): see .ci/stage.sh.
# TestMakeTestSetsUpFirst (internal/doccheck) checks this order.
test: test-env
	@dir=$$(bash .ci/stage.sh $(findstring n,$(firstword -$(MAKEFLAGS)))) && $(MAKE) --no-print-directory -C "$$dir" suite

# The suite alone, on a machine already set up (`make test-env`).
suite: build lint images
	@test -f .cache/test.env || { echo "no .cache/test.env: run make test-env (as root) first"; exit 1; }
	. ./.cache/test.env && $(GO) test -race -count=1 -timeout 40m ./...
	. ./.cache/test.env && $(GO) test -count=1 -run 'Flood' ./p2p/... ./relay/...
	$(MAKE) --no-print-directory calibrate
	$(MAKE) --no-print-directory e2e
	$(MAKE) fuzz

# The end-to-end test (e2e/): three `archy node run` processes find each
# other through their relays; one publishes hello, two install it as two
# Podman users (.ci/podman-setup.sh makes both). Behind the e2e build tag,
# alone: it runs the sample apps on their fixed ports (it takes
# /tmp/archy-ports.lock itself). Prints figure publish-to-running-ms and
# figure e2e-origin-copies. Needs the set-up (make test-env, as root).
# The simulator's calibration test (sim/calibrate): the model against the
# emulation at 16, 32 and 48 nodes on the same networks (three seeds), ±20 %
# asserted on completion (p50, p90, max), origin copies and bytes per
# node, and discovery p50 (the emulation's averaged over 4 probe
# announcements and the release's: sim/emulate/BENCHMARKS.md).
# About two minutes.
# Built only without -race, which moves the emulation's figures.
calibrate:
	$(GO) test -count=1 -v -timeout 20m ./sim/calibrate/

e2e: images
	@test -f .cache/test.env || { echo "no .cache/test.env: run make test-env (as root) first"; exit 1; }
	$(GO) vet $(E2ETAGS) ./e2e/
	. ./.cache/test.env && $(GO) test $(E2ETAGS) -race -count=1 -v -run TestEndToEnd -timeout 20m ./e2e/

# The environment the tests read, made by .ci/setup.sh (installs and starts
# what is missing when run as root).
test-env:
	@mkdir -p .cache
	bash .ci/setup.sh > .cache/test.env.tmp && mv .cache/test.env.tmp .cache/test.env

unit:
	$(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Fuzzing: every `func FuzzXxx(f *testing.F)` in a _test.go file in the
# repo runs for FUZZTIME, one target at a time (go test -fuzz takes one).
# Targets are found on their own, so a new one needs no edit here; to run
# some only: make fuzz FUZZ_TARGETS="./did:FuzzParseEnvelope".
# Today: ./did:FuzzParseEnvelope (did.ParseEnvelope + Verify).
FUZZTIME     ?= 10s
FUZZ_TARGETS ?= $(shell grep -rHoE --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git \
	'^func Fuzz[A-Za-z0-9_]*' . | sed -E 's|^(.*)/[^/]*_test[.]go:func (Fuzz.*)$$|\1:\2|' | sort -u)

fuzz:
	@test -n "$(strip $(FUZZ_TARGETS))" || { echo "no fuzz targets found"; exit 1; }
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		bash .ci/fuzz-one.sh "$(GO)" $$pkg $$fn $(FUZZTIME) || exit 1; \
	done

fuzz-list:
	@for t in $(FUZZ_TARGETS); do echo $$t; done

# Benchmarks. `make bench` runs each figure program below; each prints
# `figure <name> <value>` lines measured in one run (add yours to the list).
#   ./cas/internal/blake3bench: BLAKE3 (lukechampine, zeebo, cas.Digest)
#     against memcpy on 64 MiB, in GiB/s.
#   ./sim/emulate/internal/emufig: the largest emulated swarm and its memory
#     per node (ARCHY_EMU_SIZES, default 16,64,256, 2 seeds; about 12 minutes here).
# BENCH_FIGURE_TESTS are go test benchmarks run once each (-benchtime 1x)
# whose `figure` lines are printed (the rest of their output only when they
# fail): ./p2p: ingest, transfer, flash crowd, bad peer, update (p2p/BENCHMARKS.md);
# ./relay: publish -> live delivery, a valid event during a junk flood;
# ./p2p/discovery: a real announcement's delivery to 48 discoverers, wall
# and CPU per subscriber (what sim/model charges on shared cores).
# `make bench-go` runs the go test benchmarks of BENCH_PKGS; save two runs
# and compare them with `make benchstat OLD=a.txt NEW=b.txt`.
BENCH_FIGURES ?= ./cas/internal/blake3bench ./p2p/discovery/internal/discoverbench ./orchestrator/internal/reconcilefig ./relay/internal/insertbench ./trust/internal/trustbench ./node/internal/idlefig ./sim/internal/simfig ./sim/emulate/internal/emufig
BENCH_FIGURE_TESTS ?= ./p2p ./relay ./p2p/discovery
# BENCH_FIGURE_TARGETS are make targets whose `figure` lines are printed:
# e2e (publish-to-running-ms, e2e-origin-copies; e2e/BENCHMARKS.md).
BENCH_FIGURE_TARGETS ?= e2e
BENCH_PKGS    ?= ./cas ./p2p/dag
BENCHTIME     ?= 1s
BENCHCOUNT    ?= 1
BENCHSTAT     ?= $(GO) run golang.org/x/perf/cmd/benchstat@latest

# transfer-vs-kubo runs when ARCHY_KUBO names a kubo binary; `make kubo`
# builds one from the Go module proxy into .cache/kubo/ipfs (minutes, once),
# which `make bench` then uses.
ARCHY_KUBO ?= $(wildcard $(CURDIR)/.cache/kubo/ipfs)
export ARCHY_KUBO

kubo:
	bash .ci/build-kubo.sh $(CURDIR)/.cache/kubo/ipfs

bench:
	@for p in $(BENCH_FIGURE_TESTS); do \
		out=$$($(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m $$p 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep -oE 'figure [^ ]+ [^ ]+$$' || { echo "$$out"; echo "$$p printed no figures"; exit 1; }; \
	done
	@for p in $(BENCH_FIGURES); do $(GO) run $$p || exit 1; done
	@test -z "$(findstring n,$(firstword -$(MAKEFLAGS)))" || exit 0; \
	for t in $(BENCH_FIGURE_TARGETS); do \
		out=$$($(MAKE) --no-print-directory $$t 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep -oE '^figure [^ ]+ [^ ]+$$' || { echo "$$out"; echo "make $$t printed no figures"; exit 1; }; \
	done

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(BENCH_PKGS)

benchstat:
	@test -n "$(OLD)" -a -n "$(NEW)" || { echo "usage: make benchstat OLD=old.txt NEW=new.txt (outputs of make bench-go)"; exit 1; }
	$(BENCHSTAT) $(OLD) $(NEW)

# A node on embedded defaults: its own data folder, the embedded Nostr
# relay on 127.0.0.1:7447, the API on 127.0.0.1:7780. Ctrl-C stops it.
run: build
	./$(BIN) node run

# Installs the binary and the systemd user unit (README, "Deploying");
# DESTDIR stages them for a package.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/archy
	install -D -m 0755 $(BIN)-sim $(DESTDIR)$(PREFIX)/bin/archy-sim
	@mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/user
	sed 's|@BINDIR@|$(PREFIX)/bin|' deploy/archy.service.in > $(DESTDIR)$(PREFIX)/lib/systemd/user/archy.service
	@chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/user/archy.service

clean:
	rm -rf bin

# archy's story on one machine, step by step (examples/demo.sh): run after
# `make test-env`.
demo: build
	@$(GO) run ./examples/build >/dev/null
	bash examples/demo.sh

# The sample apps' OCI archives, built offline and deterministically.
images:
	@command -v busybox >/dev/null || test -x /bin/busybox || { echo "images: /bin/busybox is missing: run make test-env (as root) first, which installs busybox-static"; exit 1; }
	$(GO) run ./examples/build
