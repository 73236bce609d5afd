# paliprompt. `make demo` and `make test` are the two Quick start commands;
# both install what they need (make setup) first.
SHELL := bash
.DEFAULT_GOAL := build

DEPS := $(CURDIR)/.deps
# libtokenizers.a (daulet/tokenizers) is linked statically; ONNX Runtime is
# loaded at run time from .deps/onnxruntime (see grounding's runtime lookup).
# The ORT C header for the project's own small cgo layer also lives there.
export CGO_LDFLAGS := -L$(DEPS)/tokenizers
export CGO_CFLAGS := -I$(DEPS)/onnxruntime/include
VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python

.PHONY: setup setup-gpu build test test-short test-gpu lint demo quality bench fuzz venv fixtures clean

setup:
	@bash scripts/setup.sh

# ONNX Runtime's CUDA build and the CUDA 12 libraries it loads, into
# .deps/onnxruntime-gpu (about 1.9 GB to download, 3 GB on disk; once).
# Used when model.provider = "cuda"; the NVIDIA driver comes with the system.
setup-gpu:
	@bash scripts/setup.sh gpu

build: setup
	go build -o bin/paliprompt .

# Everything: lint, then every test (the demo model's quality bar and the
# slow integration tests included). What CI runs (.ci/run).
test: setup lint
	go test ./...

# The ONNX Runtime and model tests again with model.provider = "cuda", on
# the CUDA build: on a GPU they run on it; without one every model falls
# back to the CPU with the driver's reason, and every golden must still
# pass on that library. Not part of `make test` (CI): CI starts from an
# empty .deps/ and would download 1.9 GB each run.
test-gpu: setup-gpu
	PALIPROMPT_TEST_PROVIDER=cuda go test -count=1 ./grounding/...

# The fast loop: the slow tests skip under -short.
test-short: setup
	go test -short ./...

# gofmt, go vet, staticcheck, and go.mod/go.sum as go mod tidy leaves them.
lint: setup
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -w these files:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(DEPS)/bin/staticcheck ./...
	@go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

demo: build
	./bin/paliprompt demo -out out/demo

# The demo model's quality bar on the held-out scenes and its verify accuracy
# on 40 drawn images, through NATS, printed
# (the same tests run in make test).
quality: setup
	go test -count 1 -run 'TestDemoModel(Quality|Verify)$$' -v .

bench: setup
	go test -run '^$$' -bench . -benchtime 3x ./...

fuzz: setup
	bash scripts/fuzz.sh

# Python environment for tools/ only (exporting models, making fixtures).
# A stamp file marks it up to date: .venv/bin/python is a symlink, and
# touching it would touch the system interpreter instead.
VENV_STAMP := $(VENV)/.requirements-installed
venv: $(VENV_STAMP)
$(VENV_STAMP): tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tools/requirements.txt
	touch $(VENV_STAMP)

# Test models and golden references under testdata/ (tools/README.md). Every
# file regenerates byte-identically; the fp16/int8 export checks run too.
fixtures: venv
	$(PYTHON) tools/make_test_models.py
	$(PYTHON) tools/make_goldens.py

clean:
	rm -rf bin out
