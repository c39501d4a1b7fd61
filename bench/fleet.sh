#!/usr/bin/env bash
# Benchmark: a fleet. N hosts — names in the ssh_config, all served by one
# real sshd on a loopback port, as in tests/integration/fleet.rs — with
# `parallel = 32`, the example app's tree, no build, no restart, no health
# check. Gantry's deploy against the floor, the same work done by plain
# `git archive | ssh HOST 'mkdir && tar -x && ln && mv'`, 32 at a time,
# one fresh connection per host. For each N, in one run, RUNS of each,
# interleaved: wall seconds and this machine's CPU seconds (the controller's
# cgroup: the tool and its ssh processes; medians), Gantry's no-op
# redeploy, and the peak memory of Gantry with its SSH masters during the
# first deploy (sampled then, so that sampling counts in no timing). Run
# as root.
#
#   bench/fleet.sh [RUNS] [N ...]      (default: 3 runs, 100 and 300 hosts)
set -euo pipefail
runs=${1:-3}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 300)
source "$(dirname "$0")/lib.sh"
build_gantry
cpu_groups
start_hosts 1
make_repo
port=${ports[1]}
cp "$dir/ssh_config" "$dir/ssh_config.base"

# The peak RSS (MB) of Gantry and its SSH masters while $1 runs.
peak_mb() {
    local peak=0 now
    "$@" &
    local job=$!
    while kill -0 "$job" 2>/dev/null; do
        now=$(ps -eo rss=,args= | awk -v g="$gantry" '
            index($0, g) || index($0, "/gantry-ssh-") { s += $1 } END { print int(s / 1024) }')
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.2
    done
    wait "$job"
    echo "$peak" > "$dir/peak"
}

# Wall seconds and controller CPU seconds of "$@", into $wall and $cpu.
measure() {
    local c0 c1 s e
    c0=$(cpu_ms ctl); s=$(date +%s.%N)
    "$@"
    e=$(date +%s.%N); c1=$(cpu_ms ctl)
    wall=$(python3 -c "print(round($e - $s, 2))")
    cpu=$(python3 -c "print(round((${c1:-0} - ${c0:-0}) / 1000, 2))")
}

# The floor: the commit's archive unpacked into a new release on every
# host and `current` switched, 32 hosts at a time.
floor() {
    local n=$1 release
    release=r$(date +%s%N)
    git -C "$dir/repo" archive --format=tar HEAD > "$dir/archive.tar"
    seq -f 'fleet%04g' 0 $((n - 1)) | xargs -P 32 -I{} sh -c \
        "ssh -F '$dir/ssh_config' {} 'd=$dir/floor/{}; mkdir -p \$d/releases/$release && tar -x -C \$d/releases/$release && ln -sfn releases/$release \$d/current.tmp && mv -T \$d/current.tmp \$d/current' < '$dir/archive.tar'"
}

gantry_deploy() { (cd "$dir/repo" && "$gantry" -q deploy fleet); }

echo "fleet: one sshd, hosts as ssh_config names, parallel 32; $pinning"
echo "| hosts | Gantry wall / CPU | floor wall / CPU | Gantry no-op | Gantry + masters peak MB |"
echo "|---|---|---|---|---|"
for n in "${sizes[@]}"; do
    {
        for i in $(seq 0 $((n - 1))); do
            printf 'Host fleet%04d\n  HostName 127.0.0.1\n  Port %s\n  User root\n' "$i" "$port"
        done
        cat "$dir/ssh_config.base"
    } > "$dir/ssh_config"
    hosts=$(for i in $(seq 0 $((n - 1))); do printf '{ address = "fleet%04d", vars = { hostid = "f%04d" } },' "$i" "$i"; done)
    cat > "$dir/repo/gantry.toml" <<CONF
[app]
name = "fleet"
[ssh]
config = "$dir/ssh_config"
[deploy]
path = "$dir/sites/{env}/{hostid}"
parallel = 32
[environments.fleet]
hosts = [$hosts]
CONF
    commit_config gantry.toml
    # The first deploy, untimed (its memory is sampled: the sampling would
    # count in the CPU), and the floor's first.
    peak_mb gantry_deploy
    floor "$n"
    gw=(); gc=(); fw=(); fc=(); nw=()
    for r in $(seq 1 "$runs"); do
        new_commit "fleet $n run $r"
        measure gantry_deploy; gw+=("$wall"); gc+=("$cpu")
        measure floor "$n"; fw+=("$wall"); fc+=("$cpu")
        measure gantry_deploy; nw+=("$wall")
    done
    echo "| $n | $(median "${gw[@]}") s / $(median "${gc[@]}") s | $(median "${fw[@]}") s / $(median "${fc[@]}") s | $(median "${nw[@]}") s | $(cat "$dir/peak") |"
done
