# FastImage API — `make run` starts the service on local defaults, `make test`
# runs every test. Both find or start PostgreSQL themselves (.ci/ensure-postgres);
# DATABASE_URL / TEST_DATABASE_URL override that. `make test` and `make bench` also
# install the pinned stripe-mock once (.ci/ensure-stripe-mock); STRIPE_MOCK_BIN
# overrides it. `make test` also installs Debian's chromium when it is missing, for
# the browser tests (.ci/ensure-chromium); CHROMIUM_BIN overrides it.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test lint generate check-generate schema-check schema-update bench bench-baseline bench-sockets fuzz build load drills

## run: start the service on local defaults (migrations applied at start)
run:
	@url="$${DATABASE_URL:-$$(.ci/ensure-postgres fastimage)}"; \
	DATABASE_URL="$$url" $(GO) run -ldflags "$(LDFLAGS)" ./cmd/fastimage serve --migrate

## test: vet, format check, then every test against a real PostgreSQL
test: lint
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	chromium="$${CHROMIUM_BIN:-$$(.ci/ensure-chromium)}"; \
	echo "testing against $$url"; \
	start=$$(date +%s); \
	TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" CHROMIUM_BIN="$$chromium" $(GO) test -race -count=1 -timeout 15m ./...; \
	echo "make test: all packages passed in $$(( $$(date +%s) - start ))s"

lint:
	@$(GO) vet ./...
	@bad=$$(gofmt -l .); \
	if [ -n "$$bad" ]; then echo "gofmt would change:"; echo "$$bad"; exit 1; fi

## generate: rerun gqlgen after editing schema.graphqls or graph/schema/*.graphqls
generate:
	$(GO) tool gqlgen generate --config gqlgen.yml

## check-generate: fail if `make generate` would change a file (CI)
check-generate:
	@sum() { find graph -name '*.go' -type f | sort | xargs sha256sum | sha256sum; }; \
	before=$$(sum); \
	$(GO) tool gqlgen generate --config gqlgen.yml; \
	if [ "$$before" != "$$(sum)" ]; then \
		echo "make generate changed files under graph/; run it and commit the result"; exit 1; fi

## schema-check: fail on a breaking schema change not named in SCHEMA_CHANGELOG.md,
## or when schema/published.graphql is not the schema as it stands (CI)
schema-check:
	@$(GO) run ./cmd/schemacheck

## schema-update: rewrite schema/published.graphql (refused while a breaking change is unlisted)
schema-update:
	@$(GO) run ./cmd/schemacheck -update

## bench: run every benchmark BENCHCOUNT times into bench/latest.txt, then
## compare it with the committed bench/baseline.txt (benchstat, pinned in
## go.mod's tool block). Six runs of 1s each are the fewest for which benchstat
## gives a 95% confidence interval and can call a change significant, at three
## times what one 2s run per benchmark took. BENCH picks benchmarks by name.
BENCH ?= .
BENCHTIME ?= 1s
BENCHCOUNT ?= 6
bench:
	@mkdir -p bench; \
	url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	start=$$(date +%s); \
	status=0; \
	TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem \
		-benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 60m ./... | tee bench/latest.txt || status=$$?; \
	echo "make bench: ran in $$(( $$(date +%s) - start ))s; results in bench/latest.txt"; \
	if [ -f bench/baseline.txt ]; then \
		echo; echo "== benchstat bench/baseline.txt bench/latest.txt"; \
		$(GO) tool benchstat bench/baseline.txt bench/latest.txt; \
	else \
		echo "no bench/baseline.txt to compare with; make bench-baseline makes one"; \
	fi; \
	if [ "$$status" != 0 ]; then echo "make bench: a benchmark failed (see above)"; exit "$$status"; fi

## bench-baseline: make the last `make bench` results the baseline (commit it)
bench-baseline:
	@test -s bench/latest.txt || { echo "no bench/latest.txt: run make bench first"; exit 1; }
	cp bench/latest.txt bench/baseline.txt
	@echo "bench/baseline.txt updated; commit it, saying on what machine it ran"

## fuzz: run every fuzz target for FUZZTIME each (default 30s), one after
## another; FUZZ picks targets by name; FUZZMINIMIZETIME (e.g. 20x) bounds
## the minimizing of each new input. `make test` replays the seeds only.
FUZZTIME ?= 30s
FUZZ ?= .
FUZZMINIMIZETIME ?=
fuzz:
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" FUZZTIME='$(FUZZTIME)' FUZZ='$(FUZZ)' FUZZMINIMIZETIME='$(FUZZMINIMIZETIME)' GO='$(GO)' .ci/fuzz

## load: play editor users against a server already running on this machine
## (`make run` in another terminal); LOAD_FLAGS overrides the run, e.g.
## LOAD_FLAGS="-url http://127.0.0.1:18083 -users 50 -duration 30s -json load.json"
LOAD_FLAGS ?= -users 200 -duration 60s
load:
	$(GO) run ./cmd/fastimage-load $(LOAD_FLAGS)

## bench-sockets: only the idle-WebSocket memory benchmark (a real serve process, 10,000 sockets)
bench-sockets:
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	TEST_DATABASE_URL="$$url" $(GO) test -run '^$$' -bench IdleSockets -benchtime 2s ./cmd/fastimage

## build: the binary in bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/fastimage ./cmd/fastimage

## drills: the fault drills at full size (internal/drills), ending with a table of
## what each lost (it must be nothing) and how long recovery took
drills:
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	cd internal/drills && DRILLS_FULL=1 TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" $(GO) test -count=1 -timeout 40m
