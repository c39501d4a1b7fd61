#!/bin/sh
# Requests refused while Gantry deploys and rolls back the example app:
# four clients request through a real nginx all along, once with a plain
# `restart` and once with a `[deploy.handover]`. Prints requests and
# failures (refused, reset, 5xx, timeout) per command. Runs the ignored
# measurement in the integration tests (real sshd host, real nginx), so
# it needs what `scripts/test` installs.
set -eu
cd "$(dirname "$0")/.."
cargo nextest run --test integration --run-ignored only --no-capture \
    -E "test(downtime_of_a_restart_and_of_a_handover)" 2>/dev/null |
    sed -n '/^mode /,/^handover  *rollback/p'
