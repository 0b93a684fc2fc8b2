# weft: one Deno program that is the CNI plugin, the node agent, its admin API and CLI.
# `make demo` and `make test` are the two commands a newcomer runs (see README.md).

DENO ?= node_modules/.bin/deno
export DENO_NO_UPDATE_CHECK = 1

.PHONY: deps bundle build lint fmt test demo bench image clean

deps: node_modules/.bin/deno
	@scripts/install-deps.sh

node_modules/.bin/deno: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The program as one JavaScript file with every dependency inside, runnable from any directory
# with `deno run -A dist/weft.js` and no source tree beside it; the tests run this file.
# scripts/bundle.ts keeps node: built-ins out of the CNI plugin's start-up (docs/footprint.md).
bundle: node_modules/.bin/deno
	$(DENO) run -A scripts/bundle.ts -o dist/weft.js

# The artifact shipped: a single executable made from that same file, so it runs exactly what
# was tested. `deno compile` downloads the Deno runtime (denort) for the target; on a machine
# that cannot reach it this step fails, nothing else does.
build: bundle
	$(DENO) compile -A --no-config --output dist/weft dist/weft.js

lint: node_modules/.bin/deno
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check main.ts src/ tests/ bench/ scripts/

fmt: node_modules/.bin/deno
	$(DENO) fmt

test: node_modules/.bin/deno
	@scripts/install-deps.sh --tests
	$(DENO) run -A scripts/test.ts

demo: deps bundle
	$(DENO) run -A scripts/demo.ts

bench: deps bundle
	$(DENO) run -A scripts/bench.ts

# Container image with the compiled binary (needs a Docker engine and `make build`; neither
# is available on the machine this project is developed on).
IMAGE ?= ghcr.io/weft-net/weft
VERSION := $(shell sed -n 's/.*"\(.*\)".*/\1/p' src/version.ts)
image: build
	docker build -f Containerfile -t $(IMAGE):$(VERSION) .

clean:
	rm -rf dist
