#!/usr/bin/env bash
# Builds another OpenSSH (client and server) into PREFIX, from Debian's
# source package of SUITE (default: trixie, OpenSSH 10.0, whose default key
# exchange is mlkem768x25519-sha256), so the benchmarks can measure with a
# newer OpenSSH's defaults: BENCH_OPENSSH=PREFIX bench/peers.sh …
# Nothing is installed on the system: apt's lists and the sources stay in a
# private folder, the build goes only into PREFIX. Run as root:
#
#   bench/openssh.sh [PREFIX] [SUITE]
set -euo pipefail
prefix=${1:-/opt/openssh-10}
suite=${2:-trixie}
work=$(mktemp -d /tmp/gantry-openssh.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
# The Debian archive this machine's apt already uses (its deb822 sources,
# else sources.list): no archive's address is written here.
uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
if [ -z "$uri" ]; then
    echo "bench/openssh.sh: no Debian archive in this machine's apt sources" >&2
    exit 1
fi
cat > "$work/src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work" -o "Dir::State::Lists=$work/lists")
apt-get -qq "${apt[@]}" update
(cd "$work" && apt-get -qq "${apt[@]}" source --download-only openssh 2>/dev/null)
tar -xzf "$work"/openssh_*.orig.tar.gz -C "$work"
cd "$work"/openssh-*/
./configure -q --prefix="$prefix" --sysconfdir="$prefix/etc" --with-privsep-path="$prefix/empty" --without-pam
make -s -j"$(nproc)"
make -s install-nokeys
"$prefix/bin/ssh" -V
