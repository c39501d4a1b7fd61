#!/usr/bin/env bash
# Benchmark: wall time of `gantry deploy` to N real sshd hosts on loopback
# ports, with the example app (upload, build, migrate, switch, restart,
# HTTP health check, prune), with OpenSSH's default settings. Run as root;
# prints the median of RUNS deploys. Gantry alone: no peer is run here
# (peers.sh runs them side by side).
#
#   bench/deploy.sh [N] [RUNS]
set -euo pipefail
n=${1:-10}
runs=${2:-3}
source "$(dirname "$0")/lib.sh"
build_gantry
start_hosts "$n"
make_repo
hosts=$(hosts_toml "$n" hostid "")
cat > "$dir/repo/gantry.toml" <<CONF
[ssh]
config = "$dir/ssh_config"
[deploy]
path = "$dir/sites{hostid}"
parallel = 64
keep_releases = 3
shared = ["data/"]
build = ["sh build.sh"]
migrate = "python3 migrate.py"
restart = "sh restart.sh"
env = { APP_PORT = "{app_port}" }
health = { url = "http://127.0.0.1:{app_port}/health", body = "{commit}", retries = 600, interval = "100ms" }
[database]
engine = "sqlite"
path = "{shared}/data/app.sqlite3"
check = "python3 migrate.py --check"
[environments.bench]
hosts = [$hosts]
CONF
commit_config gantry.toml
times=()
for r in $(seq 1 "$runs"); do
    new_commit "run $r"
    start=$(date +%s.%N)
    (cd "$dir/repo" && "$gantry" -q deploy bench)
    end=$(date +%s.%N)
    times+=("$(python3 -c "print(round($end - $start, 3))")")
done
echo "gantry deploy to $n hosts: median $(median "${times[@]}")s over $runs runs (${times[*]})"
