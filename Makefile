# vigil — make help lists the targets.

GO        ?= go
BIN       := bin/vigil
TOOLS     := $(CURDIR)/.tools/bin
MINIO     := $(TOOLS)/minio
MINIO_MOD := github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
BENCH_CLIP := agent/camerasim/testdata/bench/bench-1080p.mp4
EVALSET   := bin/evalset
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# sudo only when not root (CI and these machines run as root).
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export VIGIL_MINIO := $(MINIO)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/vigil
	$(GO) build -o $(BIN) ./cmd/vigil

.PHONY: demo
demo: ffmpeg build ## Run simulated cameras and an agent recording them (Ctrl-C stops)
	./$(BIN) demo

.PHONY: test
test: ffmpeg chromium minio proto-tools fmt-check ## Install what tests need, check formatting and vet, run every test with -race
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...

.PHONY: bench
bench: ffmpeg chromium minio $(BENCH_CLIP) ## Print the benchmark figures (recording 10/50/100 cameras × 60 s; catalog events; logins; audit appends and verify; retention sweep of 1M segments, hold over 10k on fs and MinIO; console: first frame, latency, CPU for 1/16/64 viewers, a 4- and 16-tile wall in Chromium)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./storage/...
	$(GO) test -run '^$$' -bench . ./central/users/
	$(GO) test -run '^$$' -bench . -benchtime 3s ./central/audit/
	$(GO) test -run '^$$' -bench 'CatalogEvents' -benchtime 1x ./cmd/vigil/
	$(GO) test -run '^$$' -bench 'LoginRPC' ./cmd/vigil/
	$(GO) test -run '^$$' -bench 'AgentContinuous' -benchtime 1x -timeout 30m ./agent/
	$(GO) test -run '^$$' -bench 'Sweep1M|ApplyHold10k' -benchtime 1x -timeout 30m ./agent/retention/
	$(GO) test -run '^$$' -bench 'LiveViewers|BrowserWall' -benchtime 1x -timeout 20m ./cmd/vigil/consoletest/

.PHONY: evalset
evalset: ffmpeg ## Render the motion evaluation set into bin/evalset (about 70 s; clips up to date are kept)
	$(GO) run ./agent/motion/evalset/cmd/genevalset --out $(EVALSET)

.PHONY: bench-motion
bench-motion: evalset build ## Score every motion detector on bin/evalset and on an unseen set (seed 7): recall, precision, false alarms, CPU-s per camera-hour (about 6 min)
	$(GO) run ./agent/motion/evalset/cmd/genevalset --out $(EVALSET)-seed7 --seed 7
	@for set in $(EVALSET) $(EVALSET)-seed7; do for d in hybrid pixel compressed; do \
		echo "== $$set, detector $$d"; ./$(BIN) motion eval $$set --detector $$d -q || exit 1; echo; done; done

.PHONY: lint
lint: fmt-check ## gofmt and go vet
	$(GO) vet ./...

.PHONY: fmt-check
fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: fuzz
fuzz: ## Run each fuzz target for 30 s
	$(GO) test ./agent/config/ -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./agent/segmenter/ -run '^$$' -fuzz FuzzProbe -fuzztime 30s
	$(GO) test ./agent/media/ -run '^$$' -fuzz FuzzAssembler -fuzztime 30s
	$(GO) test ./agent/motion/eval/ -run '^$$' -fuzz FuzzGroundTruth -fuzztime 30s
	$(GO) test ./agent/motion/bitstream/ -run '^$$' -fuzz FuzzFrame -fuzztime 30s
	$(GO) test ./central/catalog/ -run '^$$' -fuzz FuzzApplyReport -fuzztime 30s
	$(GO) test ./central/config/ -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./central/pki/ -run '^$$' -fuzz FuzzSignAgent -fuzztime 30s
	$(GO) test ./central/enroll/ -run '^$$' -fuzz FuzzEnroll -fuzztime 30s
	$(GO) test ./proto/identity/ -run '^$$' -fuzz FuzzParseToken -fuzztime 30s
	$(GO) test ./agent/camerasim/ -run '^$$' -fuzz FuzzParseFMP4 -fuzztime 30s
	$(GO) test ./agent/ -run '^$$' -fuzz FuzzParseRecordingsQuery -fuzztime 30s
	$(GO) test ./central/audit/ -run '^$$' -fuzz FuzzUnmarshal -fuzztime 30s
	$(GO) test ./storage/fs/ -run '^$$' -fuzz FuzzValidateKey -fuzztime 30s
	$(GO) test ./storage/index/ -run '^$$' -fuzz FuzzDecodeSegment -fuzztime 30s
	$(GO) test ./central/console/ -run '^$$' -fuzz FuzzParseRange -fuzztime 30s
	$(GO) test ./proto/agent/v1/ -run '^$$' -fuzz FuzzSplitNALUs -fuzztime 30s

.PHONY: proto
proto: proto-tools ## Regenerate the Go code of proto/*.proto (pinned protoc plugins)
	proto/generate.sh

.PHONY: proto-tools
proto-tools: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## Install protoc (apt) and the pinned protoc plugins
	@command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/timestamp.proto ] || { \
		echo "installing protobuf-compiler (apt)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null; }

$(TOOLS)/protoc-gen-go:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)

$(TOOLS)/protoc-gen-go-grpc:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)

.PHONY: ffmpeg
ffmpeg: ## Install Debian's ffmpeg when missing (motion detection, tests)
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
		echo "installing ffmpeg (apt)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg >/dev/null; }

.PHONY: chromium
chromium: ## Install Debian's chromium when missing (console browser tests)
	@command -v chromium >/dev/null || { \
		echo "installing chromium (apt)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

.PHONY: minio
minio: $(MINIO) ## Build the MinIO server the tests run (about 4 min the first time)

$(MINIO):
	@echo "building MinIO into $(TOOLS) (about 4 minutes the first time)"
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install $(MINIO_MOD)

$(BENCH_CLIP):
	agent/camerasim/testdata/make-bench-clip.sh $@

.PHONY: clean
clean: ## Remove build output and the demo's data (keeps the built MinIO)
	rm -rf bin demo-data
