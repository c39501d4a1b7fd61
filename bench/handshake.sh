#!/usr/bin/env bash
# What one OpenSSH connection costs in CPU, on the controller's side (the
# ssh client) and on the host's side (sshd), with OpenSSH's default key
# exchange and with curve25519-sha256 (paramiko's default, what Fabric and
# pyinfra use): `ssh host true`, RUNS times each, against one real sshd on
# loopback. BENCH_OPENSSH=PREFIX (see openssh.sh) measures another build.
# Needs cgroups (lib.sh's cpu_groups). Run as root:
#
#   bench/handshake.sh [RUNS]
set -euo pipefail
runs=${1:-20}
source "$(dirname "$0")/lib.sh"
cpu_groups
[ -n "$cpu_root" ] || { echo "no cgroup to measure CPU with" >&2; exit 1; }
start_hosts 1
echo "$(ssh -V 2>&1 | cut -d, -f1), $(date -u +%F), $(nproc) cores; CPU per connection, mean of $runs"
echo
echo "| key exchange | controller | host |"
echo "|---|---|---|"
for kex in default curve25519-sha256; do
    opts=(-F "$dir/ssh_config" -p "${ports[1]}")
    [ "$kex" = default ] || opts+=(-o "KexAlgorithms=$kex")
    name=$(ssh "${opts[@]}" -v root@127.0.0.1 true 2>&1 | sed -n 's/.*kex: algorithm: //p')
    c0=$(cpu_ms ctl) h0=$(cpu_ms hosts)
    for _ in $(seq "$runs"); do ssh "${opts[@]}" root@127.0.0.1 true; done
    c1=$(cpu_ms ctl) h1=$(cpu_ms hosts)
    echo "| $name$([ "$kex" = default ] && echo " (default)") | $(( (c1 - c0) / runs )) ms | $(( (h1 - h0) / runs )) ms |"
done
