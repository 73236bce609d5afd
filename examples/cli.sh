#!/usr/bin/env bash
# Runs every nats CLI command of examples/README.md against a running
# `paliprompt serve` (default config: embedded NATS on 127.0.0.1:4222) and
# checks what comes back. Run from the repository root:
#
#   ./bin/paliprompt serve &        # in another terminal
#   examples/cli.sh
#
# Needs the nats CLI v0.5.0 (see README.md) and jq.
set -euo pipefail

export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
check() { # check <what> <command...>: the command must succeed
  local what=$1
  shift
  if "$@" >"$work/out" 2>&1; then
    echo "ok    $what"
  else
    echo "FAIL  $what"
    sed 's/^/      /' "$work/out" | head -20
    fail=1
  fi
}
has() { grep -q -- "$1" "$2"; }

nats --version | grep -qx 'v0.5.0' || echo "note: nats CLI $(nats --version), README is verified with v0.5.0"

# The service
check "micro ls" bash -c 'nats micro ls | grep -q paliprompt'
check "micro info" bash -c 'nats micro info paliprompt | grep -q "paliprompt.v1.layout"'
check "micro stats" bash -c 'nats micro stats paliprompt | grep -q generate'

# Request/reply
check "layout request" bash -c "nats req paliprompt.v1.layout --force-stdin --no-templates --raw --timeout 60s \
  < examples/requests/layout-two-shapes.json > $work/reply.json && jq -e '.objects | length == 2' $work/reply.json"
check "jq summary" bash -c "jq -e '{caption: .caption, objects: [.objects[] | {label: .label, box: .box}], prompt: .sdxl.positive} | .prompt | length > 0' $work/reply.json"
check "preview PNG" bash -c "jq -r .preview.png $work/reply.json | base64 -d > $work/preview.png && head -c 4 $work/preview.png | grep -q PNG"
check "region mask PNGs" bash -c "jq -r '.masks | to_entries[] | .key' $work/reply.json | grep -q background"
check "generate with PaliGemma text" bash -c "nats req paliprompt.v1.generate --force-stdin --no-templates -H Content-Type:application/json --raw --timeout 60s \
  < examples/requests/generate-two-shapes.json > $work/gen.json && jq -e '.image.format == \"png\" and (.sdxl.regions | length == 3)' $work/gen.json"
check "verify against the kept plan" bash -c "jq '{plan_id: .id, image_b64, detect}' examples/requests/generate-two-shapes.json \
  | nats req paliprompt.v1.verify --force-stdin --no-templates --raw --timeout 60s | jq -e '.pass and (.advice | length == 0)'"
check "verify an unknown plan: 404" bash -c "jq '{plan_id: \"never-made\", image_b64}' examples/requests/generate-two-shapes.json \
  | nats req paliprompt.v1.verify --force-stdin --no-templates --timeout 60s 2>&1 | grep -q 'Nats-Service-Error-Code: 404'"
check "detect only" bash -c "nats req paliprompt.v1.detect --force-stdin --no-templates --raw --timeout 60s \
  < examples/requests/detect-portrait.json | jq -e '[.objects[].label] == [\"yellow star\", \"green triangle\"]'"
check "placement header" bash -c "nats req paliprompt.v1.layout --force-stdin --no-templates --raw --timeout 60s -H 'Paliprompt-Place:red circle=bottom-right' \
  < examples/requests/layout-two-shapes.json | jq -e '.layout.objects[0].quadrant == \"bottom-right\"'"
check "raw image, headers (503 without a model)" bash -c "nats req paliprompt.v1.generate --force-stdin --no-templates \
  -H 'Paliprompt-Objects:red circle ; blue square' -H Paliprompt-Id:raw-1 --timeout 60s < examples/images/two-shapes.png 2>&1 \
  | grep -Eq 'Nats-Service-Error-Code: 503|\"schema\":\"paliprompt.v1\",\"id\":\"raw-1\",\"task\"'"
check "answer needs a question: 400" bash -c "nats req paliprompt.v1.answer --force-stdin --no-templates --timeout 60s \
  < examples/images/two-shapes.png 2>&1 | grep -q 'Nats-Service-Error-Code: 400'"
check "not an image: 415" bash -c "echo 'not an image' | nats req paliprompt.v1.generate --force-stdin --no-templates 2>&1 | grep -q 'Nats-Service-Error-Code: 415'"

# Object store
check "object put" nats object put paliprompt-images examples/images/house.png --name house.png -f --no-progress
check "image_object request" bash -c "nats req paliprompt.v1.generate --force-stdin --no-templates --raw --timeout 60s \
  < examples/requests/generate-house-object.json | jq -e '.image == {width: 800, height: 600, format: \"png\"}'"

# Event bus
nats sub 'aiviz.prompt.>' --count 4 >"$work/sub.txt" 2>&1 &
sub=$!
sleep 0.5
check "publish a reference" nats pub aiviz.reference.two-shapes --force-stdin --no-templates -J < examples/requests/generate-two-shapes.json
check "publish a layout reference" bash -c "nats pub aiviz.reference.any --force-stdin --no-templates -J < examples/requests/layout-two-shapes.json"
check "publish a generated image" bash -c "jq '{image_b64, detect}' examples/requests/generate-two-shapes.json \
  | nats pub aiviz.generated.two-shapes --force-stdin --no-templates -J"
check "publish a bad reference" bash -c "echo 'not an image' | nats pub aiviz.reference.bad-1 --force-stdin --no-templates -J"
for _ in $(seq 50); do kill -0 "$sub" 2>/dev/null || break; sleep 0.2; done
kill "$sub" 2>/dev/null || true
check "sub saw the results and the failure" bash -c "grep -q 'aiviz.prompt.verified.two-shapes' $work/sub.txt && grep -q 'aiviz.prompt.ready.two-shapes' $work/sub.txt && grep -q 'aiviz.prompt.ready.layout-two-shapes' $work/sub.txt && grep -q 'aiviz.prompt.failed.bad-1' $work/sub.txt"
check "stream get result" bash -c "nats stream get AIVIZ_PROMPTS --last-for aiviz.prompt.ready.two-shapes | grep -q 'Nats-Msg-Id: two-shapes:[0-9]*:[0-9a-f]*'"
check "stream get verify result" bash -c "nats stream get AIVIZ_PROMPTS --last-for aiviz.prompt.verified.two-shapes | grep -q '\"task\":\"verify\".*\"pass\":true'"
check "stream get failure" bash -c "nats stream get AIVIZ_PROMPTS --last-for aiviz.prompt.failed.bad-1 | grep -q '\"code\":415'"
check "work queue drained" bash -c "nats stream info AIVIZ_REFERENCES --json | jq -e '.state.messages == 0'"
check "consumer info" bash -c "nats consumer info AIVIZ_REFERENCES paliprompt | grep -q 'Outstanding Acks: 0'"

exit $fail
