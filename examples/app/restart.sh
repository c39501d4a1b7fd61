#!/bin/sh
# Restarts the example app from the release this script is in: stops the
# process named in the pid file, waits until it is gone, starts the new one
# detached from the SSH session. Gantry then health-checks it.
# Needs APP_PORT and DB_PATH; keeps app.pid and app.log next to DB_PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=$(dirname "$DB_PATH")
mkdir -p "$data"
pidfile="$data/app.pid"

# Whether process $1 still runs: a killed process can linger as a zombie,
# whose cmdline is empty, before its /proc entry disappears. (`[ -s ]`
# cannot tell: every file in /proc has the size 0.)
running() { [ -n "$(tr -d '\000' 2>/dev/null <"/proc/$1/cmdline")" ]; }

if [ -f "$pidfile" ]; then
    old=$(cat "$pidfile")
    if [ -n "$old" ] && kill "$old" 2>/dev/null; then
        # The new app can bind the port only once the old one is gone.
        i=0
        while running "$old" && [ $i -lt 100 ]; do
            i=$((i + 1))
            sleep 0.1
        done
    fi
fi

cd "$here"
setsid nohup python3 "$here/app.py" >>"$data/app.log" 2>&1 </dev/null &
echo $! >"$pidfile"
echo "started app (pid $(cat "$pidfile")) on port $APP_PORT"
