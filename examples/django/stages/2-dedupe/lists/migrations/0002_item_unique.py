from django.db import migrations


def merge_duplicate_items(apps, schema_editor):
    """Keeps the oldest item of each (list, text) and deletes the others."""
    Item = apps.get_model("lists", "Item")
    seen = set()
    for item in Item.objects.order_by("id"):
        key = (item.list_id, item.text)
        if key in seen:
            item.delete()
        else:
            seen.add(key)


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial")]

    operations = [
        migrations.RunPython(merge_duplicate_items, migrations.RunPython.noop),
        migrations.AlterUniqueTogether(name="item", unique_together={("list", "text")}),
    ]
