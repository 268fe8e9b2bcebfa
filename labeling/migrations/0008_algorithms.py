from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0007_task_uncertainty'),
    ]

    operations = [
        # Projects made before this migration keep training with PPO; new ones default to RLOO.
        migrations.AddField(
            model_name='project',
            name='algorithm',
            field=models.CharField(choices=[('rloo', 'RLOO: reward model, then RL with k samples per prompt and no critic'), ('ppo', 'PPO: reward model, then RL with a critic (InstructGPT)'), ('dpo', 'DPO: the policy straight from the rankings (a reward model still trains, for selection)')], default='ppo', help_text='What a round trains the policy with, after an SFT step when enough new demonstrations arrived.', max_length=8),
        ),
        migrations.AlterField(
            model_name='project',
            name='algorithm',
            field=models.CharField(choices=[('rloo', 'RLOO: reward model, then RL with k samples per prompt and no critic'), ('ppo', 'PPO: reward model, then RL with a critic (InstructGPT)'), ('dpo', 'DPO: the policy straight from the rankings (a reward model still trains, for selection)')], default='rloo', help_text='What a round trains the policy with, after an SFT step when enough new demonstrations arrived.', max_length=8),
        ),
        migrations.AddField(
            model_name='project',
            name='dpo_config',
            field=models.JSONField(blank=True, default=dict, help_text='Overrides of the DPO defaults, e.g. {"beta": 0.2}.', verbose_name='DPO config'),
        ),
        migrations.AddField(
            model_name='project',
            name='sft_config',
            field=models.JSONField(blank=True, default=dict, help_text='Overrides of the SFT defaults, e.g. {"epochs": 2, "include_top_ranked": true}.', verbose_name='SFT config'),
        ),
        migrations.AddField(
            model_name='project',
            name='sft_threshold',
            field=models.PositiveIntegerField(default=20, help_text='New demonstrations since the last SFT run that make a round start with SFT; 0 never does.', verbose_name='SFT threshold'),
        ),
        migrations.AlterField(
            model_name='project',
            name='ppo_config',
            field=models.JSONField(blank=True, default=dict, help_text='Overrides of the RL step (PPO and RLOO) defaults, e.g. {"steps": 40, "kl_coef": 0.03}.', verbose_name='RL config'),
        ),
        migrations.AlterField(
            model_name='project',
            name='promotion',
            field=models.CharField(choices=[('automatic', 'Automatic'), ('manual', 'Manual')], default='automatic', help_text="Automatic: a successful policy run's (SFT, PPO, RLOO, DPO) policy becomes active. Manual: an admin promotes it.", max_length=16),
        ),
    ]
