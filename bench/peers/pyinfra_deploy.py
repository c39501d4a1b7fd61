"""pyinfra 3: upload the archive, run the recipe on it."""
from pyinfra import host
from pyinfra.operations import files, server

site = host.data.site
archive = host.data.archive
files.directory(name="site", path=site)
files.put(name="upload", src=archive, dest=f"{site}.tar")
server.shell(
    name="recipe",
    commands=[
        f"SITE={site} REL={host.data.rel} COMMIT={host.data.commit} "
        f"APP_PORT={host.data.app_port} sh -c '{host.data.recipe}' < {site}.tar"
    ],
)
