# aiwebengine — the two commands a user needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
WASI_SDK_DIR := $(CURDIR)/target/wasi-sdk
GUEST_WASM := host/guest/aiwebengine_guest.wasm
GUEST_BUILT := target/wasm32-wasip2/guest/guest_runtime.wasm
LISTEN ?= 127.0.0.1:8080

.PHONY: run test guest guest-deps lint unit cluster-deps types browser bench clean-cache

## run: serve scripts/ on http://$(LISTEN) (hot reload on)
run:
	$(CARGO) run --release -p aiwebengine -- serve --scripts scripts --listen $(LISTEN)

## guest-deps: what building the guest needs (Debian clang/lld/llvm 19, wasi-libc, the wasm target)
guest-deps:
	rustup target add wasm32-wasip2
	tools/wasi-sdk.sh $(WASI_SDK_DIR) >/dev/null

## guest: rebuild the guest runtime wasm from guest-runtime/ and wit/
guest: guest-deps
	WASI_SDK=$(WASI_SDK_DIR) $(CARGO) build -p guest-runtime --target wasm32-wasip2 --profile guest
	cp $(GUEST_BUILT) $(GUEST_WASM)

## lint: formatting and clippy for the host and the guest
lint: guest-deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --exclude guest-runtime --all-targets -- -D warnings
	WASI_SDK=$(WASI_SDK_DIR) $(CARGO) clippy -p guest-runtime --target wasm32-wasip2 --profile guest -- -D warnings

## unit + end-to-end tests against the freshly built guest (host/tests/cluster.rs needs redis-server and nginx)
unit: cluster-deps
	$(CARGO) test --workspace --exclude guest-runtime

## cluster-deps: Debian's redis-server and nginx, for the cluster tests and deploy/run.sh (installed when missing)
cluster-deps:
	tools/cluster-deps.sh

## types: type-check scripts/ (seeds and hello.ts) against types/aiwebengine.d.ts with tsc (npm, pinned in types/package-lock.json)
types:
	@if [[ ! -f types/node_modules/.package-lock.json || types/package-lock.json -nt types/node_modules/.package-lock.json ]]; then \
		echo "types: npm ci"; (cd types && npm ci --no-audit --no-fund --loglevel=error); fi
	types/node_modules/.bin/tsc -p scripts/tsconfig.json

## test: everything CI runs (guest rebuild, lint, unit + end-to-end + cluster, type-check, real-browser)
test: guest lint unit types browser

## bench: the benchmark suite against Node.js and Bun; writes BENCHMARKS.md (README, Benchmarks)
bench:
	bench/run.sh

## browser: real-browser tests of the seed pages in headless Chromium (tests/browser/run.sh)
browser:
	bash tests/browser/run.sh
