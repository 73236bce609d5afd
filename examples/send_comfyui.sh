#!/usr/bin/env bash
# Queues a paliprompt plan on ComfyUI: uploads the plan's images (the region
# masks, and the hints when the plan has them) to ComfyUI's input folder,
# then POSTs the API graph to /prompt and prints ComfyUI's answer.
#
#   examples/send_comfyui.sh REPLY.json [COMFYUI_URL]     (default http://127.0.0.1:8188)
#
# REPLY.json is a paliprompt reply: saved from `nats req` (images inline as
# base64, or in the results bucket: fetched with the nats CLI), or written by
# `paliprompt run` (images as files beside it). Needs curl, jq and base64.
#
# Uploads use overwrite=true. Without it ComfyUI keeps an existing file of
# the same name and saves the upload as "name (1).png" when the contents
# differ, and the graph, which names "name.png", would load the old file.
# paliprompt's file names end in a hash of their pixels, so overwriting a
# file of the same name never changes its contents.
set -euo pipefail

reply=${1:?usage: $0 REPLY.json [COMFYUI_URL]}
url=${2:-http://127.0.0.1:8188}
dir=$(dirname "$reply")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every image the graph loads is in .masks (region masks, Regional Prompter's
# colour mask, hints), under the file name the graph uses.
for name in $(jq -r '.masks // {} | keys[]' "$reply"); do
  blob=$(jq -c --arg n "$name" '.masks[$n]' "$reply")
  if [ "$(jq -r '.png // empty' <<<"$blob")" != "" ]; then
    jq -r '.png' <<<"$blob" | base64 -d >"$work/$name"
  elif [ "$(jq -r '.file // empty' <<<"$blob")" != "" ]; then
    cp "$dir/$(jq -r '.file' <<<"$blob")" "$work/$name"
  else
    nats object get "$(jq -r '.bucket' <<<"$blob")" "$(jq -r '.object' <<<"$blob")" --output "$work/$name" >/dev/null
  fi
  curl -sSf -F "image=@$work/$name;filename=$name" -F type=input -F overwrite=true "$url/upload/image" >/dev/null
  echo "uploaded $name"
done

# POST /prompt takes {"prompt": <graph>}; ComfyUI checks the graph first and
# answers 400 with node_errors when it finds something wrong.
jq '{prompt: .sdxl.comfyui, client_id: "paliprompt"}' "$reply" >"$work/prompt.json"
curl -sS -H 'Content-Type: application/json' --data @"$work/prompt.json" "$url/prompt"
echo
