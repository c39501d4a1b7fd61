#!/usr/bin/env bash
# Benchmark: a fleet. N hosts at distinct addresses 127.0.x.y, all served
# by one real sshd listening on port 22 in a network namespace of its own
# (the controller runs in it too: nothing outside the machine reaches it),
# with `parallel = 32`, the example app's tree, no build, no restart, no
# health check. Gantry's deploy against the floor, the same work done by
# plain `git archive | ssh HOST 'mkdir && tar -x && ln && mv'`, 32 at a
# time, one fresh connection per host. For each N, in one run, RUNS of
# each, interleaved: wall seconds, this machine's CPU seconds (the
# controller's cgroup: the tool and its ssh processes) and the hosts' CPU
# seconds (sshd and all it starts; medians), Gantry's no-op redeploy, the
# time of only connecting to every host (`ssh HOST true`, 32 at a time:
# the least a no-op that asks each host can take), and the peak memory
# (PSS) of Gantry with its SSH masters during the first deploy (sampled
# then, so that sampling counts in no timing).
# The one sshd stands for N machines, so its `MaxStartups` is raised (each
# real host would see one connection of the burst). Run as root;
# BENCH_OPENSSH=PREFIX (see lib.sh) for another OpenSSH on both sides.
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

# The namespace and its sshd, with host 1's key and settings.
ns=gantry-fleet-$$
ip netns add "$ns"
trap 'cleanup; ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }
sed -e 's/^Port .*/Port 22/' -e 's/^ListenAddress .*/ListenAddress 0.0.0.0/' \
    -e 's/^MaxStartups .*/MaxStartups 4000:30:8000/' -e "s|^PidFile .*|PidFile $dir/h1/fleet.pid|" \
    "$dir/h1/sshd_config" > "$dir/h1/fleet_config"
# Started without the function: `$!` must be sshd itself (`ip` execs it)
# for the hosts' cgroup to hold it and all it starts.
ip netns exec "$ns" "${pin_hosts[@]}" "$sshd" -D -f "$dir/h1/fleet_config" -E "$dir/h1/fleet.log" &
pids+=($!)
if [ -n "$cpu_root" ]; then echo $! > "$cpu_root/gantry-bench-hosts/cgroup.procs"; fi
until in_ns python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',22),1); sys.exit(0 if s.recv(4)==b'SSH-' else 1)" 2>/dev/null; do :; done
echo "127.0.*.* $(cut -d' ' -f1,2 "$dir/h1/host_key.pub")" > "$dir/known_hosts"
printf '  User root\n' >> "$dir/ssh_config"

# Host i's address: 127.0.1.1, 127.0.1.2, … 127.0.1.250, 127.0.2.1, …
address() { echo "127.0.$(( $1 / 250 + 1 )).$(( $1 % 250 + 1 ))"; }

# The peak memory (MB) of Gantry and its SSH masters while $1 runs: the
# sum of their proportional set sizes (PSS: a page shared by k processes
# counts 1/k in each, so the libraries all masters map count once).
peak_mb() {
    local peak=0 now
    "$@" &
    local job=$!
    while kill -0 "$job" 2>/dev/null; do
        now=$(ps -eo pid=,args= | awk -v g="$gantry" 'index($0, g) || index($0, "/gantry-ssh-") { print $1 }' \
            | while read -r pid; do cat "/proc/$pid/smaps_rollup" 2>/dev/null || true; done \
            | awk '/^Pss:/ { s += $2 } END { print int(s / 1024) }')
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.2
    done
    wait "$job"
    echo "$peak" > "$dir/peak"
}

# Wall seconds, controller CPU seconds and the hosts' CPU seconds of "$@",
# into $wall, $cpu and $hcpu.
measure() {
    local c0 c1 h0 h1 s e
    c0=$(cpu_ms ctl); h0=$(cpu_ms hosts); s=$(date +%s.%N)
    "$@"
    e=$(date +%s.%N); c1=$(cpu_ms ctl); h1=$(cpu_ms hosts)
    wall=$(python3 -c "print(round($e - $s, 2))")
    cpu=$(python3 -c "print(round((${c1:-0} - ${c0:-0}) / 1000, 2))")
    hcpu=$(python3 -c "print(round((${h1:-0} - ${h0:-0}) / 1000, 2))")
}

# The floor: the commit's archive unpacked into a new release on every
# host and `current` switched, 32 hosts at a time.
floor() {
    local n=$1 release
    release=r$(date +%s%N)
    git -C "$dir/repo" archive --format=tar HEAD > "$dir/archive.tar"
    for i in $(seq 0 $((n - 1))); do address "$i"; done | in_ns xargs -P 32 -I{} sh -c \
        "ssh -F '$dir/ssh_config' {} 'd=$dir/floor/{}; mkdir -p \$d/releases/$release && tar -x -C \$d/releases/$release && ln -sfn releases/$release \$d/current.tmp && mv -T \$d/current.tmp \$d/current' < '$dir/archive.tar'"
}

# What no tool that asks each host over a new connection can beat: one
# `ssh HOST true` per host, 32 at a time (a no-op's floor).
connect_only() {
    local n=$1
    for i in $(seq 0 $((n - 1))); do address "$i"; done | in_ns xargs -P 32 -I{} \
        ssh -F "$dir/ssh_config" {} true
}

gantry_deploy() { (cd "$dir/repo" && in_ns "$gantry" -q deploy fleet); }

echo "fleet: one sshd in a network namespace, hosts at 127.0.x.y, parallel 32, $(ssh -V 2>&1 | cut -d, -f1); $pinning"
echo "| hosts | Gantry wall / CPU / hosts' CPU | floor wall / CPU / hosts' CPU | Gantry no-op | connect only | Gantry + masters peak MB |"
echo "|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
    hosts=$(for i in $(seq 0 $((n - 1))); do printf '{ address = "%s", vars = { hostid = "f%04d" } },' "$(address "$i")" "$i"; done)
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
    gw=(); gc=(); gh=(); fw=(); fc=(); fh=(); nw=(); cw=()
    for r in $(seq 1 "$runs"); do
        new_commit "fleet $n run $r"
        measure gantry_deploy; gw+=("$wall"); gc+=("$cpu"); gh+=("$hcpu")
        measure floor "$n"; fw+=("$wall"); fc+=("$cpu"); fh+=("$hcpu")
        measure gantry_deploy; nw+=("$wall")
        measure connect_only "$n"; cw+=("$wall")
    done
    echo "| $n | $(median "${gw[@]}") s / $(median "${gc[@]}") s / $(median "${gh[@]}") s | $(median "${fw[@]}") s / $(median "${fc[@]}") s / $(median "${fh[@]}") s | $(median "${nw[@]}") s | $(median "${cw[@]}") s | $(cat "$dir/peak") |"
done
