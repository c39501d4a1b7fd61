#!/bin/sh
# Restarts the example Django app under gunicorn, from the release this
# script is in. On a real server this is `sudo systemctl restart
# gunicorn-<site>`; here the pid file lives in Gantry's shared folder.
# Needs PYTHON (an interpreter with the requirements), APP_HOST, APP_PORT.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pidfile="$GANTRY_SHARED/gunicorn.pid"
# Whether process $1 still runs (a zombie's cmdline is empty; `[ -s ]`
# cannot tell, every file in /proc has the size 0).
running() { [ -n "$(tr -d '\000' 2>/dev/null <"/proc/$1/cmdline")" ]; }
if [ -f "$pidfile" ]; then
    old=$(cat "$pidfile")
    if [ -n "$old" ] && kill "$old" 2>/dev/null; then
        # The new gunicorn can bind the port only once the old one is gone.
        i=0
        while running "$old" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
    fi
    rm -f "$pidfile"
fi
cd "$here"
"$PYTHON" -m gunicorn --daemon --pid "$pidfile" --workers 1 \
    --bind "$APP_HOST:$APP_PORT" --chdir "$here" \
    --error-logfile "$GANTRY_SHARED/gunicorn.log" superlists.wsgi
echo "gunicorn started for $here on $APP_HOST:$APP_PORT"
