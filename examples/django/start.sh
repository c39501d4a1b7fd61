#!/bin/sh
# Starts this release's gunicorn beside the one serving, on
# 127.0.0.1:$GANTRY_PORT, for a handover (`[deploy.handover] start`). On a
# real server this is `sudo -n systemctl enable --now gunicorn-<site>@$GANTRY_PORT`,
# the template unit `gantry setup` writes; here the pid file lives in
# Gantry's shared folder. Needs PYTHON (an interpreter with the requirements).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pidfile="$GANTRY_SHARED/gunicorn-$GANTRY_PORT.pid"
cd "$here"
# Threads, so that a slow request does not hold up the others; on SIGTERM
# gunicorn finishes the requests it took, for up to 30 seconds.
"$PYTHON" -m gunicorn --daemon --pid "$pidfile" --workers 2 --threads 4 \
    --graceful-timeout 30 --bind "127.0.0.1:$GANTRY_PORT" --chdir "$here" \
    --error-logfile "$GANTRY_SHARED/gunicorn-$GANTRY_PORT.log" superlists.wsgi
echo "gunicorn started for $here on 127.0.0.1:$GANTRY_PORT"
