#!/usr/bin/env bash
# Sends a paliprompt plan to A1111 or Forge and saves the first image.
#
#   examples/send_a1111.sh REPLY.json [PAYLOAD] [WEBUI_URL] [OUT.png]
#
# PAYLOAD is one of the plan's A1111 requests (sdxl.a1111): regional_prompter
# (default; needs the Regional Prompter extension), regional_prompter_matrix,
# forge_couple or forge_couple_advanced (Forge with Forge Couple). WEBUI_URL
# defaults to http://127.0.0.1:7860 (start the web UI with --api). Each
# payload is a complete request body: its masks and images are in it as
# base64, so nothing is uploaded first. It is in the reply, or named in its
# .payloads: a file beside it (`paliprompt run`) or an object in the results
# bucket (fetched with the nats CLI). The endpoint is sdxl.a1111.endpoint:
# /sdapi/v1/txt2img, or /sdapi/v1/img2img when the plan has a start canvas.
#
# Forge Couple's Mask mode uses masks drawn in the web UI's mask canvas
# before the API's: clear that canvas (or restart the UI) first.
set -euo pipefail

reply=${1:?usage: $0 REPLY.json [PAYLOAD] [WEBUI_URL] [OUT.png]}
payload=${2:-regional_prompter}
url=${3:-http://127.0.0.1:7860}
out=${4:-a1111-$payload.png}
endpoint=$(jq -r '.sdxl.a1111.endpoint' "$reply")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
body() {
  if jq -e --arg p "$payload" '.sdxl.a1111[$p]' "$reply" >/dev/null; then
    jq --arg p "$payload" '.sdxl.a1111[$p]' "$reply"
    return
  fi
  local name blob
  name="a1111-${payload//_/-}.json"
  blob=$(jq -c --arg n "$name" '.payloads[$n] // empty' "$reply")
  if [ -z "$blob" ]; then
    echo "the plan has no payload $payload (see sdxl.a1111 and payloads in $reply)" >&2
    return 1
  elif [ "$(jq -r '.file // empty' <<<"$blob")" != "" ]; then
    cat "$(dirname "$reply")/$(jq -r '.file' <<<"$blob")"
  else
    nats object get "$(jq -r '.bucket' <<<"$blob")" "$(jq -r '.object' <<<"$blob")" --output "$work/stored.json" >/dev/null
    cat "$work/stored.json"
  fi
}
body >"$work/body.json"
curl -sSf -H 'Content-Type: application/json' --data @"$work/body.json" "$url$endpoint" |
  jq -r '.images[0]' | base64 -d >"$out"
echo "wrote $out"
