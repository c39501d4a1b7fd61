"""Fabric 3: the recipe on every host at once (one thread per host, as
Fabric's ThreadingGroup does): upload the archive over SFTP, run the recipe
on it. Usage: fab.py HOSTS_FILE ARCHIVE REL COMMIT RECIPE KEY"""
import sys
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection

hosts_file, archive, rel, commit, recipe_file, key = sys.argv[1:7]
recipe = open(recipe_file).read()


def deploy(line):
    port, site, app_port = line.split()
    c = Connection(
        "127.0.0.1",
        user="root",
        port=int(port),
        connect_kwargs={"key_filename": key, "look_for_keys": False},
    )
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
