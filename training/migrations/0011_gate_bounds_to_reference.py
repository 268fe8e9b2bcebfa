from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0010_ai_judge"),
    ]

    operations = [
        migrations.AlterField(
            model_name="recipe",
            name="gate_max_eos_change",
            field=models.FloatField(
                default=0.5,
                help_text="The share of the new policy's answers that end with EOS (not cut at max_new_tokens) may "
                "move by at most this much from its parent's, and from its KL reference's (the base or the last SFT "
                "version).",
                verbose_name="gate max EOS-rate change",
            ),
        ),
        migrations.AlterField(
            model_name="recipe",
            name="gate_max_length_change",
            field=models.FloatField(
                default=0.5,
                help_text="The new policy's mean answer length may differ from its parent's, and from its KL "
                "reference's (the base or the last SFT version), by at most this share (0.5: half as long to one "
                "and a half times as long).",
            ),
        ),
    ]
