from django.db import migrations


def fill_notes(apps, schema_editor):
    """Gives every item without a note an empty one."""
    Item = apps.get_model("lists", "Item")
    Item.objects.filter(note__isnull=True).update(note="")


class Migration(migrations.Migration):
    """A data migration without a reverse: it cannot be taken back."""

    dependencies = [("lists", "0003_item_note")]

    operations = [migrations.RunPython(fill_notes)]
