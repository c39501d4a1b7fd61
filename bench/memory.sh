#!/usr/bin/env bash
# Peak memory (maximum resident set size) of the Gantry process deploying
# the example app to N real sshd hosts, and its wall time; the SSH masters
# are separate processes and not counted. Run as root:
#
#   bench/memory.sh [N]
set -euo pipefail
n=${1:-100}
source "$(dirname "$0")/lib.sh"
build_gantry
start_hosts "$n"
make_repo
list=$(hosts_toml "$n" site "$dir/sites")
cat > "$dir/repo/gantry.toml" <<CONF
[ssh]
config = "$dir/ssh_config"
[deploy]
path = "{site}"
parallel = 1000
shared = ["data/"]
build = ["python3 -m compileall -q ."]
restart = "sh restart.sh"
env = { APP_PORT = "{app_port}", DB_PATH = "{shared}/data/app.sqlite3" }
health = { url = "http://127.0.0.1:{app_port}/health", body = "{commit}", retries = 600, interval = "100ms" }
[environments.bench]
hosts = [$list]
CONF
commit_config gantry.toml
for run in first second; do
    new_commit "$run"
    (cd "$dir/repo" && /usr/bin/time -f "%M %e" -o "$dir/time" "$gantry" deploy bench > "$dir/out" 2>&1) \
        || { cat "$dir/out" >&2; exit 1; }
    read -r kb secs < "$dir/time"
    echo "$run deploy to $n hosts: peak RSS $((kb / 1024)) MB, ${secs}s; $(grep -c 'hosts: serving' "$dir/out") summary groups, $(wc -l < "$dir/out") lines of output"
done
