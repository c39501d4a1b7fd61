from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial")]

    operations = [
        migrations.AlterUniqueTogether(name="item", unique_together={("list", "text")}),
    ]
