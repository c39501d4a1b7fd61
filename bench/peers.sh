#!/usr/bin/env bash
# Side by side, in one run, against the same N real sshd hosts: the same
# recipe (recipe.sh) deployed by
#   - no SSH at all: the recipe run locally for each host's site (the floor)
#   - ssh … bash -s: one OpenSSH connection per host, the recipe and the
#     archive on its stdin (the SSH floor)
#   - Fabric 3 and pyinfra 3 (paramiko), Ansible (OpenSSH, pipelining),
#     installed from PyPI into a virtualenv
#   - Gantry (`gantry -q deploy`, OpenSSH, the same steps as its config)
# Every tool that uses OpenSSH uses its defaults (the ssh_config names only
# the key and known_hosts). Each tool deploys RUNS new commits; the medians,
# each median's ratio to the no-SSH floor, and the CPU time spent on the
# controller's and the hosts' side are printed as a table; then Gantry's
# no-op (a deploy of the commit every host serves), RUNS times. BENCH_OPENSSH
# (see lib.sh, openssh.sh) measures with another OpenSSH build; BENCH_PIN=1
# puts the controller and the hosts on separate CPUs (lib.sh).
# Run as root:
#
#   bench/peers.sh [N] [RUNS] [TOOLS]     TOOLS: "local ssh fabric pyinfra ansible gantry"
set -euo pipefail
n=${1:-10}
runs=${2:-3}
tools=${3:-"local ssh fabric pyinfra ansible gantry"}
source "$(dirname "$0")/lib.sh"
venv=${BENCH_VENV:-/root/.cache/gantry-bench/peers}
if [ ! -x "$venv/bin/fab" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'fabric>=3.2,<4' 'pyinfra>=3.1,<4' 'ansible-core>=2.19,<2.20'
fi
build_gantry

cpu_groups
start_hosts "$n"
make_repo
grep -v '^#' "$here/bench/recipe.sh" > "$dir/recipe.sh"
if grep -q "'" "$dir/recipe.sh"; then echo "recipe.sh must not hold single quotes" >&2; exit 1; fi

# Per tool: a hosts file of "ssh-port site app-port" lines.
for tool in $tools; do
    : > "$dir/hosts.$tool"
    for i in $(seq 1 "$n"); do
        echo "${ports[$i]} $dir/sites/$tool/h$i $(free_port)" >> "$dir/hosts.$tool"
    done
done

# Gantry's config: the same steps as the recipe. `gantry-kex` is Gantry
# with paramiko's key exchange (curve25519-sha256) instead of OpenSSH's
# default, for reading where the time goes; it is not a claim.
gantry_config() {
    local tool=$1 list="" port site app
    while read -r port site app; do
        list="$list{ address = \"root@127.0.0.1:$port\", vars = { site = \"$site\", app_port = \"$app\" } },"
    done < "$dir/hosts.$tool"
    local ssh_config="$dir/ssh_config"
    if [ "$tool" = gantry-kex ]; then
        ssh_config="$dir/ssh_config.kex"
        { cat "$dir/ssh_config"; echo "  KexAlgorithms curve25519-sha256"; } > "$ssh_config"
    fi
    cat > "$dir/repo/$tool.toml" <<CONF
[ssh]
config = "$ssh_config"
[deploy]
path = "{site}"
parallel = 1000
keep_releases = 5
shared = ["data/"]
build = ["python3 -m venv --without-pip .venv", "python3 -m compileall -q ."]
restart = "sh restart.sh"
env = { APP_PORT = "{app_port}", DB_PATH = "{shared}/data/app.sqlite3" }
health = { url = "http://127.0.0.1:{app_port}/health", body = "{commit}", retries = 600, interval = "100ms" }
[environments.bench]
hosts = [$list]
CONF
    commit_config "$tool.toml"
}

# One deploy of the repo's HEAD by TOOL to every host.
deploy() {
    local tool=$1 commit rel archive
    commit=$(git -C "$dir/repo" rev-parse HEAD)
    rel="$(date -u +%Y%m%dT%H%M%S%N)-${commit:0:8}"
    archive="$dir/$tool.tar"
    case $tool in
    gantry|gantry-kex)
        (cd "$dir/repo" && "$gantry" -q --config "$tool.toml" deploy bench) ;;
    local)
        git -C "$dir/repo" archive --format=tar HEAD > "$archive"
        local port site app jobs=()
        # The PATH an SSH session gets from sshd, so the same programs run.
        while read -r port site app; do
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                SITE=$site REL=$rel COMMIT=$commit APP_PORT=$app "${pin_hosts[@]}" bash "$dir/recipe.sh" < "$archive" &
            jobs+=($!)
        done < "$dir/hosts.local"
        for j in "${jobs[@]}"; do wait "$j"; done ;;
    ssh)
        git -C "$dir/repo" archive --format=tar HEAD > "$archive"
        local port site app jobs=()
        while read -r port site app; do
            { printf 'main() {\n'; cat "$dir/recipe.sh"; printf '}\nmain; exit $?\n'; cat "$archive"; } \
                | ssh -F "$dir/ssh_config" -p "$port" root@127.0.0.1 \
                    "SITE=$site REL=$rel COMMIT=$commit APP_PORT=$app bash -s" &
            jobs+=($!)
        done < "$dir/hosts.ssh"
        for j in "${jobs[@]}"; do wait "$j"; done ;;
    fabric)
        git -C "$dir/repo" archive --format=tar HEAD > "$archive"
        "$venv/bin/python" "$here/bench/peers/fab.py" "$dir/hosts.fabric" "$archive" "$rel" "$commit" "$dir/recipe.sh" "$dir/client_key" "$dir/known_hosts" ;;
    pyinfra)
        git -C "$dir/repo" archive --format=tar HEAD > "$archive"
        BENCH_HOSTS="$dir/hosts.pyinfra" BENCH_RECIPE="$dir/recipe.sh" BENCH_KEY="$dir/client_key" \
        BENCH_KNOWN_HOSTS="$dir/known_hosts" BENCH_ARCHIVE="$archive" BENCH_REL="$rel" BENCH_COMMIT="$commit" \
            "$venv/bin/pyinfra" -y --no-wait --parallel "$n" \
            "$here/bench/peers/pyinfra_inventory.py" "$here/bench/peers/pyinfra_deploy.py" > "$dir/pyinfra.log" 2>&1 \
            || { cat "$dir/pyinfra.log" >&2; return 1; } ;;
    ansible)
        git -C "$dir/repo" archive --format=tar HEAD > "$archive"
        local port site app
        : > "$dir/inventory.ini"
        while read -r port site app; do
            echo "h$port ansible_host=127.0.0.1 ansible_port=$port ansible_user=root site=$site app_port=$app" >> "$dir/inventory.ini"
        done < "$dir/hosts.ansible"
        cat > "$dir/ansible.cfg" <<CONF
[defaults]
forks = $n
host_key_checking = True
stdout_callback = ansible.builtin.minimal
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
ssh_args = -F $dir/ssh_config -o ControlMaster=auto -o ControlPersist=60s
CONF
        python3 -c 'import json,sys; print(json.dumps({"archive": sys.argv[1], "rel": sys.argv[2], "commit": sys.argv[3], "recipe": open(sys.argv[4]).read()}))' \
            "$archive" "$rel" "$commit" "$dir/recipe.sh" > "$dir/ansible-vars.json"
        ANSIBLE_CONFIG="$dir/ansible.cfg" "$venv/bin/ansible-playbook" -i "$dir/inventory.ini" \
            -e "@$dir/ansible-vars.json" \
            "$here/bench/peers/ansible.yml" > "$dir/ansible.log" 2>&1 \
            || { cat "$dir/ansible.log" >&2; return 1; } ;;
    esac
}

# Every host of TOOL answers with the repo's HEAD.
check() {
    local tool=$1 commit port site app
    commit=$(git -C "$dir/repo" rev-parse HEAD)
    while read -r port site app; do
        curl -sf "http://127.0.0.1:$app/health" | grep -q "$commit" \
            || { echo "$tool: $site does not serve $commit" >&2; return 1; }
        # The file `git archive` stamps with the commit has this one's.
        grep -q "commit $commit" "$site/current/VERSION" \
            || { echo "$tool: $site's VERSION is not $commit's" >&2; return 1; }
    done < "$dir/hosts.$tool"
}

for tool in $tools; do
    case $tool in gantry|gantry-kex) gantry_config "$tool" ;; esac
done
declare -A result ctl_cpu hosts_cpu failed noops
# A tool whose deploy fails, or after which a host does not serve the new
# commit, is reported as failed (with the hosts' sshd complaints) and the
# other tools go on.
fail() {
    failed[$1]=$2
    echo "$1: FAILED ($2)" >&2
    grep -h -i -E 'penalt|refus|error|fatal' "$dir"/h*/sshd.log 2>/dev/null | tail -5 >&2 || true
    # And what the apps that did not answer said (their log is in the site's
    # shared data folder, for every tool).
    grep -H -i -E 'error|exception|traceback' "$dir"/sites/"$1"/*/shared/data/app.log 2>/dev/null | tail -10 >&2 || true
}
for tool in $tools; do
    times=() ctl=() hosts=()
    # A first deploy that is not timed: every tool starts from a host that
    # has a release (Gantry's deltas, pyinfra's checksums apply).
    new_commit "warm $tool"
    if ! deploy "$tool" > /dev/null || ! check "$tool"; then fail "$tool" "warm-up deploy"; continue; fi
    for r in $(seq 1 "$runs"); do
        new_commit "$tool $r"
        c0=$(cpu_ms ctl) h0=$(cpu_ms hosts)
        start=$(date +%s.%N)
        deploy "$tool" > /dev/null || { fail "$tool" "run $r"; break; }
        end=$(date +%s.%N)
        c1=$(cpu_ms ctl) h1=$(cpu_ms hosts)
        check "$tool" || { fail "$tool" "run $r"; break; }
        times+=("$(python3 -c "print(f'{$end - $start:.2f}')")")
        if [ -n "$cpu_root" ]; then ctl+=($((c1 - c0))); hosts+=($((h1 - h0))); fi
    done
    # Gantry again, with nothing new: every host serves the commit already.
    if [ -z "${failed[$tool]:-}" ] && [[ $tool == gantry* ]]; then
        noop=()
        for r in $(seq 1 "$runs"); do
            start=$(date +%s.%N)
            deploy "$tool" > /dev/null || { fail "$tool" "no-op $r"; break; }
            end=$(date +%s.%N)
            noop+=("$(python3 -c "print(f'{$end - $start:.2f}')")")
        done
        [ -n "${failed[$tool]:-}" ] || noops[$tool]="$(median "${noop[@]}") s (${noop[*]})"
    fi
    pkill -f "$dir/sites/$tool/" 2>/dev/null || true
    [ -z "${failed[$tool]:-}" ] || continue
    result[$tool]="$(median "${times[@]}") ${times[*]}"
    ctl_cpu[$tool]=$([ -n "$cpu_root" ] && median "${ctl[@]}" || echo "")
    hosts_cpu[$tool]=$([ -n "$cpu_root" ] && median "${hosts[@]}" || echo "")
    echo "$tool: median $(median "${times[@]}")s (${times[*]}), CPU ms controller ${ctl[*]:-?}, hosts ${hosts[*]:-?}" >&2
done

floor=${result[local]:-}; floor=${floor%% *}
echo
echo "N=$n hosts, medians of $runs runs, $(date -u +%F), $cpus cores, $(ssh -V 2>&1 | cut -d, -f1) (default key exchange: $(ssh -F "$dir/ssh_config" -v -p "${ports[1]}" root@127.0.0.1 true 2>&1 | sed -n "s/.*kex: algorithm: //p"))"
echo
echo "| tool | median | × no-SSH floor | CPU: controller | CPU: hosts | runs |"
echo "|---|---|---|---|---|---|"
for tool in $tools; do
    if [ -n "${failed[$tool]:-}" ]; then echo "| $tool | failed (${failed[$tool]}) | | | | |"; continue; fi
    read -r med all <<< "${result[$tool]}"
    ratio=$([ -n "$floor" ] && python3 -c "print(f'{$med / $floor:.2f}')" || echo "")
    echo "| $tool | ${med} s | ${ratio} | ${ctl_cpu[$tool]:+${ctl_cpu[$tool]} ms} | ${hosts_cpu[$tool]:+${hosts_cpu[$tool]} ms} | $all |"
done
for tool in "${!noops[@]}"; do
    echo
    echo "$tool, deploying the commit every host already serves (a no-op): median ${noops[$tool]}"
done
echo
echo "CPU: the median CPU time of a run, on the controller's side (the tool, its"
echo "ssh clients, git) and on the hosts' side (sshd and all it starts);"
echo "$pinning."
