# FastImage API — `make run` starts the service on local defaults, `make test`
# runs every test. Both find or start PostgreSQL themselves (.ci/ensure-postgres);
# DATABASE_URL / TEST_DATABASE_URL override that. `make test` and `make bench` also
# install the pinned stripe-mock once (.ci/ensure-stripe-mock); STRIPE_MOCK_BIN
# overrides it.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test lint generate check-generate schema-check schema-update bench build drills

## run: start the service on local defaults (migrations applied at start)
run:
	@url="$${DATABASE_URL:-$$(.ci/ensure-postgres fastimage)}"; \
	DATABASE_URL="$$url" $(GO) run -ldflags "$(LDFLAGS)" ./cmd/fastimage serve --migrate

## test: vet, format check, then every test against a real PostgreSQL
test: lint
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	echo "testing against $$url"; \
	start=$$(date +%s); \
	TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" $(GO) test -race -count=1 -timeout 15m ./...; \
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

## bench: run the benchmarks and print their figures
bench:
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" $(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...

## build: the binary in bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/fastimage ./cmd/fastimage

## drills: the fault drills at full size (internal/drills), ending with a table of
## what each lost (it must be nothing) and how long recovery took
drills:
	@url="$${TEST_DATABASE_URL:-$$(.ci/ensure-postgres postgres)}"; \
	stripe_mock="$${STRIPE_MOCK_BIN:-$$(.ci/ensure-stripe-mock)}"; \
	cd internal/drills && DRILLS_FULL=1 TEST_DATABASE_URL="$$url" STRIPE_MOCK_BIN="$$stripe_mock" $(GO) test -count=1 -timeout 40m
