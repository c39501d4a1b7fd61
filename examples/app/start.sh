#!/bin/sh
# Starts the example app of the release this script is in on GANTRY_PORT,
# beside any other release's app (`[deploy.handover]`): its pid file and
# log are named after the port, next to DB_PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=$(dirname "$DB_PATH")
mkdir -p "$data"
cd "$here"
APP_PORT=$GANTRY_PORT setsid nohup python3 "$here/app.py" >>"$data/app-$GANTRY_PORT.log" 2>&1 </dev/null &
echo $! >"$data/app-$GANTRY_PORT.pid"
echo "started app (pid $!) on port $GANTRY_PORT"
