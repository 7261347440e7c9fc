# Flow Tekton Handler. `make demo` runs the whole system on an embedded local
# control plane; `make test` runs every test, end-to-end ones included.

SHELL         := bash
.SHELLFLAGS   := -eo pipefail -c
GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
E2E_TIMEOUT   ?= 30m
FUZZTIME      ?= 2000x
FUZZTIME_LONG ?= 2m
FUNC_REGISTRY ?=
# What func's build gets (test/funcbuild.GOFLAGS says why each): its Go host
# builder runs a bare `go build` with the caller's environment and takes no
# build flags from func.yaml, so `make deploy` passes them in GOFLAGS, as
# `make build` does.
FUNC_GOFLAGS  := -mod=mod -trimpath -ldflags=-s
VULNDB        ?=

# Every target builds and tests with the Go toolchain named by go.mod's
# toolchain line (it carries the standard library's security fixes), fetched
# once from the module proxy into the module cache. Machines whose go.env says
# GOTOOLCHAIN=local would otherwise ignore that line.
GO_TOOLCHAIN  := $(shell sed -n 's/^toolchain //p' go.mod)
GO_TOOLCHAIN_ROOT := $(shell GOTOOLCHAIN=$(GO_TOOLCHAIN) go env GOROOT)
ifeq ($(GO_TOOLCHAIN_ROOT),)
$(error cannot fetch the Go toolchain $(GO_TOOLCHAIN) (go.mod) through the module proxy)
endif
export PATH := $(GO_TOOLCHAIN_ROOT)/bin:$(PATH)
unexport GOROOT

.PHONY: all build engine test unit e2e lint vet staticcheck vulncheck fuzz fuzz-short bench bench-smoke demo up down controlplane manifestcheck go-version deploy clean

all: build

## build: bin/handler, bin/sink and bin/logs (one program under three names), built the way func's Go host builder does
build:
	$(GO) run ./test/cmd/funcbuild -src . -bin bin

## engine: bin/engine, the Engine stand-in for trying the handler by hand (bin/engine -addr 127.0.0.1:7701)
engine:
	$(GO) build -o bin/engine ./test/cmd/engine

## controlplane: build (once, cached outside the repo) the local control plane binaries
controlplane:
	$(GO) run ./test/cmd/cluster build

go-version:
	@$(GO) version

## manifestcheck: build (once, cached outside the repo) the Knative/Tekton manifest checker and run it
manifestcheck:
	$(GO) test -count=1 -tags e2e -run 'TestManifests$$' ./test/deploy

## test: lint, unit tests, fuzz smoke, and end-to-end tests on the embedded control plane
## Every test is listed as it passes, with what it logs, so the output shows the end-to-end
## tests ran; a failing test shows its whole output (test/cmd/testfmt reads go test -json).
test: lint build controlplane
	$(GO) build -o bin/testfmt ./test/cmd/testfmt
	$(GO) test -count=1 -tags e2e -timeout $(E2E_TIMEOUT) -json ./... | bin/testfmt
	$(MAKE) fuzz-short
	$(MAKE) bench-smoke

## bench-smoke: every micro-benchmark once, so that none rots (make test runs it)
bench-smoke:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...

## unit: fast tests only (no control plane)
unit:
	$(GO) test -count=1 ./...

## lint: gofmt, vet and staticcheck, with and without the e2e build tag
lint: vet staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

## vet: go vet, with and without the e2e build tag
vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...

## staticcheck: staticcheck (pinned version), with and without the e2e build tag
staticcheck:
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./...

## vulncheck: govulncheck with the database built from golang.org/x/vulndb (pinned; VULNDB=latest for the newest).
## make test runs the same check as test/vulncheck's TestProject.
vulncheck:
	$(GO) run ./test/cmd/vulncheck $(if $(VULNDB),-db-version $(VULNDB))

## fuzz-short: every fuzz target with -fuzztime $(FUZZTIME); fuzz: with $(FUZZTIME_LONG).
## A count, not a time: the corpus kept in Go's cache is replayed first, and a
## short time could be spent on that replay alone, fuzzing nothing new.
fuzz-short:
	@FUZZTIME=$(FUZZTIME) ./test/fuzz.sh

fuzz:
	@FUZZTIME=$(FUZZTIME_LONG) ./test/fuzz.sh

## demo: the whole system on one machine: control plane, handler, sink, Engine stand-in, a workflow
demo: build controlplane
	$(GO) run ./test/cmd/demo -bin bin

## up/down: start the embedded control plane in the background (prints KUBECONFIG=...), stop it
up: controlplane
	@$(GO) run ./test/cmd/cluster up

down:
	@$(GO) run ./test/cmd/cluster down

## bench: speed and memory against floors measured in the same run
bench: build controlplane
	$(GO) run ./test/cmd/bench -bin bin -out test/bench/RESULTS.md

## deploy: needs a real cluster with Knative Serving/Eventing and Tekton, and func and kubectl on PATH.
## FUNC_REGISTRY (e.g. make deploy FUNC_REGISTRY=ghcr.io/me) is where func pushes the image; func records it
## in func.yaml, so later deploys need it only to change it. The Secret flow-tekton-engine (ENGINE_TOKEN, may be
## empty) must exist before func deploy: func refuses to deploy without it. The sink and then the logs Service
## run the image the handler's deploy wrote to func.yaml (deploy.image), by digest: func refuses to build or push
## an image given by digest.
deploy:
	kubectl get secret flow-tekton-engine >/dev/null 2>&1 || kubectl create secret generic flow-tekton-engine
	kubectl apply -k config
	GOFLAGS='$(FUNC_GOFLAGS)' func deploy --path . $(if $(FUNC_REGISTRY),--registry $(FUNC_REGISTRY))
	image=$$(sed -n 's/^ *image: *\([^ ]*@sha256:[0-9a-f]\{64\}\)$$/\1/p' func.yaml | tail -1); \
	test -n "$$image" || { echo "make deploy: func.yaml has no image digest (deploy.image) after func deploy" >&2; exit 1; }; \
	func deploy --path function/sink --build=false --push=false --image "$$image"; \
	func deploy --path function/logs --build=false --push=false --image "$$image"
	kubectl apply --server-side --force-conflicts --field-manager=flow-tekton-handler -k config/tekton

clean:
	rm -rf bin .func function/sink/.func function/logs/.func
