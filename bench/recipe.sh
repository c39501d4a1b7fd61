# The recipe every tool runs on each host, written once: unpack the commit
# (a tar on stdin) into a new release, a pip-less virtualenv, REVISION,
# byte-compile, switch `current` atomically, restart the app by its pid
# file, check over HTTP until the new commit answers, keep 5 releases.
# Needs SITE, REL, COMMIT and APP_PORT in the environment.
set -eu
r="$SITE/releases/$REL"
mkdir -p "$r" "$SITE/shared/data"
tar -x -C "$r"
cd "$r"
python3 -m venv --without-pip .venv
echo "$COMMIT" > REVISION
python3 -m compileall -q .
ln -sfn "$r" "$SITE/current.new" && mv -T "$SITE/current.new" "$SITE/current"
DB_PATH="$SITE/shared/data/app.sqlite3" APP_PORT="$APP_PORT" sh "$SITE/current/restart.sh" > /dev/null
i=0
until curl -sf "http://127.0.0.1:$APP_PORT/health" | grep -q "$COMMIT"; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "the new commit never answered" >&2; exit 1; }
    sleep 0.1
done
cd "$SITE/releases" && ls -1 | sort | head -n -5 | while read -r old; do rm -rf -- "$old"; done
