from django.db import migrations


class Migration(migrations.Migration):
    """The column dropped: the release serving before still reads it."""

    dependencies = [("lists", "0004_note_backfill")]

    operations = [migrations.RemoveField("item", "note")]
