from django.db import migrations, models


class Migration(migrations.Migration):
    """A nullable column: the release serving keeps working beside it."""

    dependencies = [("lists", "0002_item_unique")]

    operations = [
        migrations.AddField("item", "note", models.TextField(null=True, blank=True)),
    ]
