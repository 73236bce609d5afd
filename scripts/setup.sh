#!/usr/bin/env bash
# Installs paliprompt's native dependencies into .deps/ (ignored by git).
# Idempotent: each step is skipped when its output is already there.
#
#   scripts/setup.sh        the CPU setup (make setup):
#   .deps/onnxruntime/libonnxruntime.so.1   ONNX Runtime (CPU build) from the
#                                            PyPI wheel onnxruntime, unpacked by
#                                            scripts/wheels (no Python needed)
#   .deps/onnxruntime/include/              the ORT C API headers (from the Go
#                                            module github.com/yalue/onnxruntime_go)
#                                            for the project's own small cgo layer
#   .deps/tokenizers/libtokenizers.a        built with cargo from the source of
#                                            the Go module github.com/daulet/tokenizers
#   .deps/bin/staticcheck                    honnef.co/go/tools, for make lint
#   libjpeg-turbo (system, Debian's libjpeg62-turbo-dev)
#                                            the JPEG decoder Pillow uses, for
#                                            bit-exact and fast JPEG decoding
#
#   scripts/setup.sh gpu    also the CUDA setup (make setup-gpu):
#   .deps/onnxruntime-gpu/                   ONNX Runtime's CUDA build (core library
#                                            and CUDA provider, same version as the
#                                            CPU one) and the CUDA 12 libraries it
#                                            loads (cudart, cuBLAS, cuDNN 9, cuFFT,
#                                            cuRAND, NVRTC, nvJitLink), from PyPI
#                                            wheels: about 1.9 GB to download, 3.0 GB
#                                            on disk. The NVIDIA driver is not part
#                                            of it (it comes with the system).
# The pinned wheels (versions, sizes, SHA-256) are in scripts/wheels/pins.go.
set -euo pipefail

ORT_GO_VERSION=v1.27.0
TOKENIZERS_VERSION=v1.22.1
STATICCHECK_VERSION=v0.8.2

root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
mkdir -p "$deps"

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "setup: '$1' is not installed; $2" >&2
  exit 1
}

# install_wheels SET DIR: the pinned wheels of SET (scripts/wheels/pins.go)
# into DIR; scripts/wheels skips them when DIR already holds them.
install_wheels() {
  need go "install Go (https://go.dev/dl)"
  (cd "$root" && go run ./scripts/wheels -set "$1" -dest "$2")
}

install_onnxruntime() {
  install_wheels cpu "$deps/onnxruntime"
  ln -sf libonnxruntime.so.1 "$deps/onnxruntime/libonnxruntime.so"
  rm -f "$deps/onnxruntime/VERSION" # the marker of the npm build installed before
}

# module_dir prints the module cache folder of a Go module version.
module_dir() {
  need go "install Go (https://go.dev/dl)"
  (cd "$root" && go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

install_ort_headers() {
  local dir="$deps/onnxruntime/include"
  if [ -f "$dir/onnxruntime_c_api.h" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$ORT_GO_VERSION" ]; then
    return 0
  fi
  local src
  src=$(module_dir github.com/yalue/onnxruntime_go "$ORT_GO_VERSION")
  [ -f "$src/onnxruntime_c_api.h" ] || { echo "setup: no onnxruntime_c_api.h in github.com/yalue/onnxruntime_go $ORT_GO_VERSION" >&2; exit 1; }
  mkdir -p "$dir"
  cp "$src"/onnxruntime_c_api.h "$src"/onnxruntime_ep_c_api.h "$dir/"
  chmod u+w "$dir"/*.h
  echo "$ORT_GO_VERSION" >"$dir/VERSION"
}

install_tokenizers() {
  local dir="$deps/tokenizers"
  if [ -f "$dir/libtokenizers.a" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$TOKENIZERS_VERSION" ]; then
    return 0
  fi
  need cargo "install Rust with rustup (https://rustup.rs); it builds libtokenizers.a from github.com/daulet/tokenizers $TOKENIZERS_VERSION"
  echo "setup: building libtokenizers.a ($TOKENIZERS_VERSION) with cargo; this takes a few minutes once"
  local src
  src=$(module_dir github.com/daulet/tokenizers "$TOKENIZERS_VERSION")
  [ -d "$src" ] || { echo "setup: could not find the source of github.com/daulet/tokenizers $TOKENIZERS_VERSION" >&2; exit 1; }
  # The module cache is read-only: build from a copy.
  rm -rf "$deps/tokenizers-src"
  cp -r "$src" "$deps/tokenizers-src"
  chmod -R u+w "$deps/tokenizers-src"
  (cd "$deps/tokenizers-src" && CARGO_TARGET_DIR="$deps/cargo-target" cargo build --release --locked --quiet)
  mkdir -p "$dir"
  cp "$deps/cargo-target/release/libtokenizers.a" "$dir/"
  echo "$TOKENIZERS_VERSION" >"$dir/VERSION"
  rm -rf "$deps/tokenizers-src"
}

install_staticcheck() {
  local bin="$deps/bin"
  if [ -x "$bin/staticcheck" ] && [ "$(cat "$bin/staticcheck.VERSION" 2>/dev/null)" = "$STATICCHECK_VERSION" ]; then
    return 0
  fi
  need go "install Go (https://go.dev/dl)"
  echo "setup: building staticcheck $STATICCHECK_VERSION (for make lint)"
  mkdir -p "$bin"
  (cd "$root" && GOBIN="$bin" GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION")
  echo "$STATICCHECK_VERSION" >"$bin/staticcheck.VERSION"
}

# libjpeg-turbo is a system library (Debian's package, as on CI machines);
# installed with apt-get when its header is missing.
install_libjpeg_turbo() {
  if echo '#include <stdio.h>
#include <jpeglib.h>' | cc -E -x c - >/dev/null 2>&1; then
    return 0
  fi
  echo "setup: installing libjpeg-turbo (Debian package libjpeg62-turbo-dev)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if ! $sudo apt-get install -y -q libjpeg62-turbo-dev >/dev/null; then
    echo "setup: could not install libjpeg62-turbo-dev; install libjpeg-turbo's development files (jpeglib.h, libjpeg.so) and rerun" >&2
    exit 1
  fi
}

install_libjpeg_turbo
install_onnxruntime
install_ort_headers
install_tokenizers
install_staticcheck
if [ "${1:-}" = gpu ]; then
  install_wheels gpu "$deps/onnxruntime-gpu"
  echo "setup: ONNX Runtime's CUDA build and the CUDA 12 libraries ready in .deps/onnxruntime-gpu/ (used when model.provider = \"cuda\")"
fi
echo "setup: native dependencies ready in .deps/"
