"""A run's inputs move out of `config` into their own fields, and a round's steps point at it
(`parent`); `config` keeps only the algorithm's dataclass. Existing rows are carried over."""

import django.db.models.deletion
from django.db import migrations, models


# Keys that were the run's inputs, not its algorithm's config (as written before this migration).
INPUT_KEYS = {"round", "policy_version", "reward_model", "through_ranking_id", "prompts", "kind", "k",
              "a", "b", "version_a", "version_b", "preference"}  # fmt: skip


def carry_inputs_over(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    PolicyVersion = apps.get_model("training", "PolicyVersion")
    RewardModelVersion = apps.get_model("training", "RewardModelVersion")
    Ranking = apps.get_model("labeling", "Ranking")

    def existing(model, pk):  # an id written into config may name a row deleted since
        return pk if pk is not None and model.objects.filter(pk=pk).exists() else None

    for run in TrainingRun.objects.all().iterator():
        config = run.config or {}
        run.parent_id = existing(TrainingRun, config.get("round"))
        run.reward_model_id = existing(RewardModelVersion, config.get("reward_model"))
        run.through_ranking_id = existing(Ranking, config.get("through_ranking_id"))
        run.prompts = config.get("prompts")
        run.k = config.get("k")
        run.task_kind = config.get("kind", "")
        run.preference = config.get("preference", "")
        run.policy_id = existing(PolicyVersion, config.get("policy_version"))
        if run.kind == "blind_eval":  # a and b held policy ids
            run.policy_id, run.baseline_id = existing(PolicyVersion, config.get("b")), existing(PolicyVersion, config.get("a"))
        elif run.kind == "eval":  # a and b held version numbers
            versions = dict(PolicyVersion.objects.filter(project_id=run.project_id).values_list("version", "pk"))
            run.policy_id, run.baseline_id = versions.get(config.get("b")), versions.get(config.get("a"))
        run.config = {key: value for key, value in config.items() if key not in INPUT_KEYS}
        run.save()


def put_inputs_back(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    PolicyVersion = apps.get_model("training", "PolicyVersion")
    for run in TrainingRun.objects.all().iterator():
        inputs = {
            "round": run.parent_id, "policy_version": run.policy_id, "reward_model": run.reward_model_id,
            "through_ranking_id": run.through_ranking_id, "prompts": run.prompts, "k": run.k,
            "kind": run.task_kind or None, "preference": run.preference or None,
        }  # fmt: skip
        if run.kind == "blind_eval":  # a and b held policy ids
            inputs.update(a=run.baseline_id, b=run.policy_id, policy_version=None)
        elif run.kind == "eval":  # a and b held version numbers
            versions = dict(PolicyVersion.objects.filter(project_id=run.project_id).values_list("pk", "version"))
            inputs.update(a=versions.get(run.baseline_id), b=versions.get(run.policy_id), policy_version=None)
        run.config = {**run.config, **{key: value for key, value in inputs.items() if value is not None}}
        run.save()



class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0006_quality_gold_heldout'),
        ('training', '0004_fresh_scores_blind_eval'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='trainingrun',
            name='celery_task_id',
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='baseline',
            field=models.ForeignKey(blank=True, help_text='Evaluations: the version the policy is compared with (a).', null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='+', to='training.policyversion'),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='k',
            field=models.PositiveSmallIntegerField(blank=True, help_text='Sampling: completions per prompt.', null=True),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='parent',
            field=models.ForeignKey(blank=True, help_text='The round this run is a step of.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='steps', to='training.trainingrun'),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='policy',
            field=models.ForeignKey(blank=True, help_text='The policy it samples, trains from, or evaluates (b of a comparison).', null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='+', to='training.policyversion'),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='preference',
            field=models.CharField(blank=True, help_text='Evaluations by a function: the module:callable that judged.', max_length=200),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='prompts',
            field=models.PositiveIntegerField(blank=True, help_text='Sampling, evaluations: at most this many.', null=True),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='reward_model',
            field=models.ForeignKey(blank=True, help_text='PPO: the reward model it trains against.', null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='+', to='training.rewardmodelversion'),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='task_kind',
            field=models.CharField(blank=True, help_text='Sampling: the kind of task made (train, eval).', max_length=10),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='through_ranking',
            field=models.ForeignKey(blank=True, help_text='Reward models: trained on the usable rankings up to this one.', null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='+', to='labeling.ranking'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='config',
            field=models.JSONField(blank=True, default=dict, help_text="The algorithm's config dataclass as JSON (training.core.config)."),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='kind',
            field=models.CharField(choices=[('generate', 'Sample comparisons'), ('rm', 'Reward model'), ('ppo', 'PPO round'), ('eval', 'Evaluation'), ('blind_eval', 'Blind human evaluation'), ('round', 'Full round')], max_length=10),
        ),
        migrations.RunPython(carry_inputs_over, put_inputs_back),
    ]
