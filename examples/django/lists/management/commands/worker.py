"""The example's background worker: `python manage.py worker`.

Its jobs are the items in the database: it takes each item it has not
done yet, in order, and records it as done (`worker/done` in Gantry's
shared folder: "ITEM-ID COMMIT" per line), then writes a heartbeat
(`worker/heartbeat`: "COMMIT UNIX-TIME"). On SIGTERM it finishes the job in
hand and stops: a graceful stop. It refuses to start when the shared
folder's `worker-unhealthy` file names its commit, so tests can break one
release's worker.

`python manage.py worker --check` is the worker's health check, a command
rather than a URL: it waits (up to --wait seconds) for a heartbeat from this
release's worker written after the check began.
"""

import os
import signal
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from lists.models import Item
from lists.views import commit

STOP = False


def folder():
    shared = Path(os.environ.get("GANTRY_SHARED", "."))
    path = shared / "worker"
    path.mkdir(parents=True, exist_ok=True)
    return shared, path


def stop(signum, frame):
    global STOP
    STOP = True


class Command(BaseCommand):
    help = "Runs the example's worker, or checks it (--check)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true")
        parser.add_argument("--wait", type=float, default=10.0)

    def handle(self, *args, check=False, wait=10.0, **options):
        if check:
            sys.exit(self.heartbeat_check(wait))
        self.run()

    def heartbeat_check(self, wait):
        _, path = folder()
        began = time.time()
        last = "no heartbeat yet"
        while time.time() - began < wait:
            try:
                sha, at = (path / "heartbeat").read_text().split()
                if sha == commit() and float(at) >= began:
                    print(f"worker of {sha} is alive")
                    return 0
                last = f"the last heartbeat is from {sha}"
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        print(f"no heartbeat from the worker of {commit()} in {wait:g}s: {last}")
        return 1

    def run(self):
        shared, path = folder()
        sha = commit()
        try:
            if (shared / "worker-unhealthy").read_text().strip() == sha:
                print(f"the worker of {sha} is marked unhealthy: not starting", flush=True)
                sys.exit(3)
        except OSError:
            pass
        signal.signal(signal.SIGTERM, stop)
        done_file = path / "done"
        try:
            done = {int(line.split()[0]) for line in done_file.read_text().splitlines() if line}
        except OSError:
            done = set()
        print(f"worker of {sha} started", flush=True)
        while not STOP:
            for item in Item.objects.exclude(id__in=done).order_by("id")[:10]:
                # One job: recorded as done before the next is taken.
                with done_file.open("a") as f:
                    f.write(f"{item.id} {sha}\n")
                done.add(item.id)
                if STOP:
                    break
            (path / "heartbeat.tmp").write_text(f"{sha} {time.time()}\n")
            (path / "heartbeat.tmp").replace(path / "heartbeat")
            time.sleep(0.2)
        print(f"worker of {sha} stopped after its last job", flush=True)
