"""pyinfra's inventory, from the benchmark's hosts file (port, site, app
port per line) and BENCH_* variables."""
import os

_recipe = open(os.environ["BENCH_RECIPE"]).read()
hosts = []
for line in open(os.environ["BENCH_HOSTS"]).read().splitlines():
    port, site, app_port = line.split()
    hosts.append(
        (
            f"127.0.0.1:{port}",
            {
                "ssh_hostname": "127.0.0.1",
                "ssh_port": int(port),
                "ssh_user": "root",
                "ssh_key": os.environ["BENCH_KEY"],
                "ssh_known_hosts_file": os.environ["BENCH_KNOWN_HOSTS"],
                # Unknown host keys refused, as by the OpenSSH tools here.
                "ssh_strict_host_key_checking": "yes",
                "site": site,
                "app_port": app_port,
                "archive": os.environ["BENCH_ARCHIVE"],
                "rel": os.environ["BENCH_REL"],
                "commit": os.environ["BENCH_COMMIT"],
                "recipe": _recipe,
            },
        )
    )
