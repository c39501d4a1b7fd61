#!/bin/sh
# Stops the example app running on GANTRY_PORT (`[deploy.handover]`), and
# waits until it is gone, so the port is free for the next release.
set -eu
pidfile="$(dirname "$DB_PATH")/app-$GANTRY_PORT.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
# A killed process can linger as a zombie, whose cmdline is empty.
running() { [ -n "$(tr -d '\000' 2>/dev/null <"/proc/$1/cmdline")" ]; }
if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    i=0
    while running "$pid" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
fi
rm -f "$pidfile"
echo "stopped the app on port $GANTRY_PORT"
