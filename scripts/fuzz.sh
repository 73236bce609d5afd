#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a while and keeps what the
# fuzzer found: new interesting inputs are copied from Go's fuzz cache into
# <package>/testdata/fuzz/<FuzzName>/, where plain `go test` replays them as
# regression cases. Commit the new files.
#
#   scripts/fuzz.sh                 every target, FUZZTIME each (default 30s)
#   scripts/fuzz.sh FuzzDecodeRequest
#   FUZZTIME=5m FUZZ_PARALLEL=2 scripts/fuzz.sh
#
# A crash stops the script; its input is kept under testdata/fuzz/ by Go
# itself and `go test` replays it until it is fixed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-30s}
parallel=${FUZZ_PARALLEL:-1}
only=${1:-}
cache=$(go env GOCACHE)/fuzz
module=$(go list -m)

# Each line: <package dir> <FuzzName>
targets=$(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . |
  grep -v '^\./\.deps/' |
  sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$|\1 \2|' | sort -u)
if [ -z "$targets" ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

ran=0
while read -r dir name; do
  [ -n "$only" ] && [ "$name" != "$only" ] && continue
  echo "== $name in ./$dir ($fuzztime)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$parallel" "./$dir"
  found="$cache/$module/$dir/$name"
  corpus="$dir/testdata/fuzz/$name"
  mkdir -p "$corpus"
  before=$(ls "$corpus" | wc -l)
  if [ -d "$found" ]; then
    cp -n "$found"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "   corpus $corpus: $before -> $(ls "$corpus" | wc -l) inputs"
  ran=$((ran + 1))
done <<<"$targets"

if [ "$ran" -eq 0 ]; then
  echo "fuzz: no fuzz target named $only; targets are:" >&2
  echo "$targets" >&2
  exit 1
fi
