"""Fabric 3: the recipe on every host at once (one thread per host, as
Fabric's ThreadingGroup does): upload the archive over SFTP, run the recipe
on it. Host keys are checked against KNOWN_HOSTS, unknown ones refused
(Fabric's own default accepts them). Usage: fab.py HOSTS_FILE ARCHIVE REL
COMMIT RECIPE KEY KNOWN_HOSTS"""
import sys
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection
from paramiko import RejectPolicy

hosts_file, archive, rel, commit, recipe_file, key, known_hosts = sys.argv[1:8]
recipe = open(recipe_file).read()


def deploy(line):
    port, site, app_port = line.split()
    c = Connection(
        "127.0.0.1",
        user="root",
        port=int(port),
        connect_kwargs={"key_filename": key, "look_for_keys": False},
    )
    c.client.load_host_keys(known_hosts)
    c.client.set_missing_host_key_policy(RejectPolicy())
    remote = f"{site}.tar"
    c.run(f"mkdir -p {site}", hide=True)
    c.put(archive, remote)
    env = f"SITE={site} REL={rel} COMMIT={commit} APP_PORT={app_port}"
    c.run(f"{env} sh -c '{recipe}' < {remote}", hide=True)
    c.close()


lines = [l for l in open(hosts_file).read().splitlines() if l.strip()]
with ThreadPoolExecutor(max_workers=len(lines)) as pool:
    for result in pool.map(deploy, lines):
        pass
