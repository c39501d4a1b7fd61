# Shared by the benchmarks: N real sshd hosts on loopback ports (throw-away
# keys, OpenSSH's default settings), a repository of the example app with a
# bare origin. Source it, then call `start_hosts N` and `make_repo`.
# Sets: dir (a fresh temporary folder), ports[i], keys in $dir.
#
# BENCH_OPENSSH=PREFIX runs another OpenSSH build (PREFIX/sbin/sshd for the
# hosts, PREFIX/bin first on PATH for every tool that uses `ssh`), to
# measure with another version's defaults; unset, the system's.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sshd=/usr/sbin/sshd
if [ -n "${BENCH_OPENSSH:-}" ]; then
    sshd="$BENCH_OPENSSH/sbin/sshd"
    export PATH="$BENCH_OPENSSH/bin:$PATH"
fi
dir=$(mktemp -d /tmp/gantry-bench.XXXXXX)
pids=()
ports=()
cleanup() {
    if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $dir (hosts still running)" >&2; return; fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -f "$dir/" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# A free loopback port below the kernel's ephemeral range (an outgoing
# connection's local port could otherwise take an app's port before the app
# binds it), never one this run handed out before.
free_port() {
    local p
    while :; do
        p=$(python3 -c 'import random, socket
try: low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError: low = 32768
while True:
    p = random.randrange(10000, low)
    try: socket.socket().bind(("127.0.0.1", p)); print(p); break
    except OSError: pass')
        grep -qx "$p" "$dir/ports.used" 2>/dev/null || break
    done
    echo "$p" >> "$dir/ports.used"
    echo "$p"
}

# CPU time spent by the controller's side (this script and what it starts)
# and by the hosts' side (the sshd processes and everything they start),
# through two cgroups: v1 `cpuacct` or v2, whichever the machine has. Call
# `cpu_groups` before `start_hosts`; `cpu_ms ctl|hosts` prints the
# milliseconds so far, or nothing where cgroups cannot be used.
cpu_root=""
cpu_groups() {
    local root
    for root in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/unified /sys/fs/cgroup; do
        if { [ -f "$root/cpuacct.usage" ] || { [ -f "$root/cgroup.procs" ] && [ -f "$root/cgroup.controllers" ]; }; } \
            && mkdir -p "$root/gantry-bench-ctl" "$root/gantry-bench-hosts" 2>/dev/null \
            && echo $$ > "$root/gantry-bench-ctl/cgroup.procs" 2>/dev/null; then
            cpu_root=$root
            return
        fi
    done
}
cpu_ms() {
    local g="$cpu_root/gantry-bench-$1"
    [ -n "$cpu_root" ] || return 0
    if [ -f "$g/cpuacct.usage" ]; then echo $(( $(cat "$g/cpuacct.usage") / 1000000 ))
    else awk '/^usage_usec/ { print int($2 / 1000) }' "$g/cpu.stat"; fi
}

# BENCH_PIN=1: the controller (this script and all it starts) on CPU 0,
# the hosts (their sshd and all they start) on the other CPUs, as when the
# hosts are other machines than the controller. Unset, all share every
# CPU. `pin_hosts` is the command prefix that puts a process on the hosts'
# CPUs (empty when not pinning); `pinning` says where everything runs.
# `cpus` is the machine's count (`nproc` counts only a pinned process's).
cpus=$(nproc)
pin_hosts=()
pinning="the hosts share this machine's $cpus cores with the controller"
if [ -n "${BENCH_PIN:-}" ] && [ "$cpus" -ge 2 ]; then
    taskset -cp 0 $$ > /dev/null
    pin_hosts=(taskset -c "1-$((cpus - 1))")
    pinning="pinned: the controller on CPU 0, the hosts on CPU 1-$((cpus - 1)) of $cpus"
fi

# Starts hosts 1..N; writes $dir/known_hosts and $dir/ssh_config (the key
# and known_hosts only: every other setting is OpenSSH's default).
start_hosts() {
    local n=$1 i d port
    mkdir -p /run/sshd "$dir/home"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
    : > "$dir/known_hosts"
    for i in $(seq 1 "$n"); do
        d="$dir/h$i"; mkdir -p "$d"
        ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
        port=$(free_port)
        ports[$i]=$port
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
Subsystem sftp internal-sftp
SetEnv HOME=$dir/home
CONF
        "${pin_hosts[@]}" "$sshd" -D -f "$d/sshd_config" -E "$d/sshd.log" &
        pids+=($!)
        if [ -n "$cpu_root" ]; then echo $! > "$cpu_root/gantry-bench-hosts/cgroup.procs"; fi
        echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/host_key.pub")" >> "$dir/known_hosts"
    done
    for i in $(seq 1 "$n"); do
        until python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',${ports[$i]}),1); sys.exit(0 if s.recv(4)==b'SSH-' else 1)" 2>/dev/null; do :; done
    done
    cat > "$dir/ssh_config" <<CONF
Host *
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  LogLevel ERROR
CONF
}

# The example app in $dir/repo, pushed to $dir/origin.git.
make_repo() {
    git init -q --bare "$dir/origin.git"
    # As on a git host, a push does not wait for the server's housekeeping.
    git -C "$dir/origin.git" config receive.autogc false
    cp -r "$here/examples/app" "$dir/repo"
    rm -rf "$dir/repo/__pycache__"
    # The commit stamped into a file by `git archive` (`export-subst`), as
    # apps stamp their version: every commit's archive differs there.
    printf 'VERSION export-subst\n' > "$dir/repo/.gitattributes"
    printf 'commit $Format:%%H$\n' > "$dir/repo/VERSION"
    (cd "$dir/repo" && git init -q -b main && git add -A \
        && git -c user.name=b -c user.email=b@b commit -qm bench \
        && git remote add origin "$dir/origin.git" && git push -q origin main)
}

# Commits the config file FILE (in $dir/repo) and pushes it to origin.
commit_config() {
    (cd "$dir/repo" && git add "$1" && git -c user.name=b -c user.email=b@b commit -qm config && git push -q origin main)
}

# A new commit on origin, so every deploy has something new to send.
new_commit() {
    (cd "$dir/repo" && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m "$1" \
        && git push -q origin main)
}

# Builds Gantry (release) and sets $gantry.
build_gantry() {
    cargo build --release --quiet --manifest-path "$here/Cargo.toml"
    gantry="$here/target/release/gantry"
}

# The TOML list of hosts 1..N, each with `VAR = "<folder under $dir/sites>/h<i>"`
# (the folder) and a free `app_port`.
hosts_toml() {
    local n=$1 var=$2 folder=$3 list="" i
    for i in $(seq 1 "$n"); do
        list="$list{ address = \"root@127.0.0.1:${ports[$i]}\", vars = { $var = \"$folder/h$i\", app_port = \"$(free_port)\" } },"
    done
    echo "$list"
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
