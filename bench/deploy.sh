#!/usr/bin/env bash
# Benchmark: wall time of `gantry deploy` to N real sshd hosts on loopback
# ports, with the example app (upload, build, migrate, switch, restart,
# HTTP health check, prune), with OpenSSH's default settings. Run as root;
# prints the median of RUNS deploys. Gantry alone: no peer is run here, so
# its numbers are no comparison (see README.md).
#
#   bench/deploy.sh [N] [RUNS]
set -euo pipefail
n=${1:-10}
runs=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
gantry="$here/target/release/gantry"
dir=$(mktemp -d /tmp/gantry-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -f "$dir/" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p /run/sshd "$dir/home"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hosts=""
: > "$dir/known_hosts"
for i in $(seq 1 "$n"); do
    d="$dir/h$i"; mkdir -p "$d"
    ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
    port=$(free_port); app=$(free_port)
    cat > "$d/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $dir/client_key.pub
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
StrictModes no
MaxSessions 100
MaxStartups 200
UseDNS no
SetEnv HOME=$dir/home
CONF
    /usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" &
    pids+=($!)
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/host_key.pub")" >> "$dir/known_hosts"
    hosts="$hosts{ address = \"root@127.0.0.1:$port\", vars = { hostid = \"h$i\", app_port = \"$app\" } },"
done
for i in $(seq 1 "$n"); do
    port=$(grep '^Port' "$dir/h$i/sshd_config" | cut -d' ' -f2)
    until python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$port),1); sys.exit(0 if s.recv(4)==b'SSH-' else 1)" 2>/dev/null; do :; done
done
cat > "$dir/ssh_config" <<CONF
Host *
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  LogLevel ERROR
CONF
git init -q --bare "$dir/origin.git"
cp -r "$here/examples/app" "$dir/repo"
cd "$dir/repo"
rm -rf __pycache__
cat > gantry.toml <<CONF
[ssh]
config = "$dir/ssh_config"
[deploy]
path = "$dir/sites/{hostid}"
parallel = 64
keep_releases = 3
shared = ["data/"]
build = ["sh build.sh"]
migrate = "python3 migrate.py"
restart = "sh restart.sh"
env = { APP_PORT = "{app_port}" }
health = { url = "http://127.0.0.1:{app_port}/health", body = "{commit}", retries = 100, interval = "100ms" }
[database]
engine = "sqlite"
path = "{shared}/data/app.sqlite3"
check = "python3 migrate.py --check"
[environments.bench]
hosts = [$hosts]
CONF
git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm bench
git remote add origin "$dir/origin.git" && git push -q origin main
times=()
for r in $(seq 1 "$runs"); do
    git -c user.name=b -c user.email=b@b commit -q --allow-empty -m "run $r" && git push -q origin main
    start=$(date +%s.%N)
    "$gantry" -q deploy bench
    end=$(date +%s.%N)
    times+=("$(python3 -c "print(round($end - $start, 3))")")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
echo "gantry deploy to $n hosts: median ${median}s over $runs runs (${times[*]})"
