#!/bin/sh
# Stops the gunicorn on $GANTRY_PORT (`[deploy.handover] stop`): SIGTERM,
# then waits while it finishes the requests it took. On a real server this
# is `sudo -n systemctl disable --now gunicorn-<site>@$GANTRY_PORT`.
set -eu
pidfile="$GANTRY_SHARED/gunicorn-$GANTRY_PORT.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
# Whether process $1 still runs (a zombie's cmdline is empty).
running() { [ -n "$(tr -d '\000' 2>/dev/null <"/proc/$1/cmdline")" ]; }
if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    i=0
    while running "$pid" && [ $i -lt 400 ]; do i=$((i + 1)); sleep 0.1; done
fi
rm -f "$pidfile"
echo "gunicorn on 127.0.0.1:$GANTRY_PORT stopped"
