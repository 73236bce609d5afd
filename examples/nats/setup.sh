#!/usr/bin/env bash
# Creates what paliprompt uses on a NATS server, as an operator would
# before starting paliprompt with the least-privilege user `paliprompt` of
# examples/nats/paliprompt.conf (which may not create anything itself):
# the work-queue stream of references, the results stream, the durable
# consumer and the three Object Store buckets, with config.toml's defaults.
# Run with the nats CLI (v0.5.0) as a user allowed to create them:
#
#   NATS_URL=nats://127.0.0.1:4222 NATS_USER=admin NATS_PASSWORD=... examples/nats/setup.sh
#
# The test plugin/examples_nats_test.go runs this script when the nats CLI
# is on PATH.
set -euo pipefail

# [events] stream, subjects and generated_subjects: references and generated
# images, a work queue.
nats stream add AIVIZ_REFERENCES --defaults --subjects 'aiviz.reference.>' --subjects 'aiviz.generated.>' \
  --retention work --storage file --description 'Reference images for paliprompt (work queue)'
# [events] results_stream: results, failures and verify results; results_max_age, duplicate_window.
nats stream add AIVIZ_PROMPTS --defaults --subjects 'aiviz.prompt.ready.>' --subjects 'aiviz.prompt.failed.>' --subjects 'aiviz.prompt.verified.>' \
  --retention limits --storage file --max-age 168h --dupe-window 1h --description 'paliprompt results and failures'
# [events] consumer: durable, pulled by every instance; ack_wait, max_deliver.
nats consumer add AIVIZ_REFERENCES paliprompt --defaults --pull --ack explicit --deliver all \
  --wait 60s --max-deliver 5 --description 'paliprompt instances'
# [objects] images_bucket and results_bucket (results_ttl).
nats object add paliprompt-images --storage file --description 'paliprompt: reference images too large for one message'
nats object add paliprompt-results --storage file --ttl 24h --description 'paliprompt: masks and previews too large to inline'
# [objects] plans_bucket (plans_ttl): the plans verify requests name by id.
nats object add paliprompt-plans --storage file --ttl 24h --description 'paliprompt: plans kept for verify'
