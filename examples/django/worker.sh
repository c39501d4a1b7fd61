#!/bin/sh
# Restarts the example's worker (`python manage.py worker`) from the
# release this script is in, gracefully: the old worker gets SIGTERM and
# up to WORKER_STOP_TIMEOUT seconds (30) to finish the job in hand, then
# SIGKILL. On a real server this is `sudo systemctl restart worker-<site>`
# with `TimeoutStopSec=`; here the pid file lives in Gantry's shared
# folder. Needs PYTHON (an interpreter with the requirements).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pidfile="$GANTRY_SHARED/worker.pid"
running() { [ -n "$(tr -d '\000' 2>/dev/null <"/proc/$1/cmdline")" ]; }
if [ -f "$pidfile" ]; then
    old=$(cat "$pidfile")
    if [ -n "$old" ] && kill "$old" 2>/dev/null; then
        i=0
        limit=$((${WORKER_STOP_TIMEOUT:-30} * 10))
        while running "$old" && [ $i -lt $limit ]; do i=$((i + 1)); sleep 0.1; done
        running "$old" && kill -KILL "$old" 2>/dev/null
    fi
    rm -f "$pidfile"
fi
cd "$here"
setsid nohup "$PYTHON" manage.py worker >>"$GANTRY_SHARED/worker.log" 2>&1 </dev/null &
echo $! >"$pidfile"
echo "worker started for $here (pid $(cat "$pidfile"))"
