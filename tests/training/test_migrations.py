"""Migration 0005 moves a run's inputs out of `config` into their own fields: rows written before
it keep what they said."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("training", "0004_fresh_scores_blind_eval")]
AFTER = [("training", "0005_run_inputs")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def write_old_rows(apps) -> dict:
    """Runs as the code before 0005 wrote them, with every input inside `config`."""
    project = apps.get_model("labeling", "Project").objects.create(name="Old rows")
    policy = apps.get_model("training", "PolicyVersion")
    v0 = policy.objects.create(project=project, version=0, checkpoint="base", status="retired")
    v1 = policy.objects.create(project=project, version=1, parent=v0, checkpoint="p1", status="active")
    prompt = apps.get_model("labeling", "Prompt").objects.create(project=project, text="Why?", text_sha256="0" * 64)
    task = apps.get_model("labeling", "ComparisonTask").objects.create(
        project=project, prompt=prompt, policy_version=v0
    )
    user = apps.get_model("auth", "User").objects.create(username="old-labeler")
    ranking = apps.get_model("labeling", "Ranking").objects.create(task=task, labeler=user, order=[[1], [2]])
    rm = apps.get_model("training", "RewardModelVersion").objects.create(
        project=project, version=1, checkpoint="rm1", trained_through_ranking_id=ranking.pk,
        trained_through_time=ranking.created_at, rankings_count=1,
    )  # fmt: skip
    runs = apps.get_model("training", "TrainingRun").objects
    round_ = runs.create(project=project, kind="round", status="succeeded")
    sampling = {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "max_new_tokens": 64, "seed": 5}
    made = {
        "generate": runs.create(project=project, kind="generate", status="succeeded", config={
            "policy_version": v0.pk, "prompts": 50, "kind": "train", "k": 4, "round": round_.pk, **sampling}),
        "rm": runs.create(project=project, kind="rm", status="succeeded", config={
            "lr": 1e-5, "epochs": 1, "through_ranking_id": ranking.pk, "policy_version": v0.pk}),
        "ppo": runs.create(project=project, kind="ppo", status="succeeded", config={
            "steps": 3, "kl_coef": 0.05, "policy_version": v0.pk, "reward_model": rm.pk}),
        "blind_eval": runs.create(project=project, kind="blind_eval", status="succeeded", config={
            "a": v0.pk, "b": v1.pk, "version_a": 0, "version_b": 1, "prompts": 24, "seed": 9}),
        "eval": runs.create(project=project, kind="eval", status="succeeded", config={
            "a": 0, "b": 1, "preference": "labeling.demo.preferences:shorter", "prompts": 24, "seed": 0}),
        "gone": runs.create(project=project, kind="ppo", status="failed", config={
            "steps": 3, "policy_version": v0.pk, "reward_model": 999_999}),
    }  # fmt: skip
    return {"round": round_.pk, "ranking": ranking.pk, **{name: run.pk for name, run in made.items()}}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_run_inputs_migration_carries_existing_rows_over():
    ids = write_old_rows(migrate(BEFORE).loader.project_state(BEFORE).apps)
    try:
        apps = migrate(AFTER).loader.project_state(AFTER).apps  # the models as they were at 0005
        PolicyVersion, RewardModelVersion, TrainingRun = (  # noqa: N806 - model classes
            apps.get_model("training", name) for name in ("PolicyVersion", "RewardModelVersion", "TrainingRun")
        )
        runs = {name: TrainingRun.objects.get(pk=pk) for name, pk in ids.items() if name not in ("round", "ranking")}
        v0, v1 = (PolicyVersion.objects.get(project__name="Old rows", version=n) for n in (0, 1))

        generate = runs["generate"]
        assert (generate.parent_id, generate.policy, generate.prompts, generate.task_kind, generate.k) == (
            ids["round"], v0, 50, "train", 4,
        )  # fmt: skip
        assert generate.config == {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "max_new_tokens": 64, "seed": 5}
        assert TrainingRun.objects.get(pk=ids["round"]).steps.get() == generate

        assert (runs["rm"].through_ranking_id, runs["rm"].policy, runs["rm"].config) == (
            ids["ranking"], v0, {"lr": 1e-5, "epochs": 1},
        )  # fmt: skip
        assert (runs["ppo"].policy, runs["ppo"].reward_model, runs["ppo"].config) == (
            v0, RewardModelVersion.objects.get(), {"steps": 3, "kl_coef": 0.05},
        )  # fmt: skip
        blind = runs["blind_eval"]
        assert (blind.baseline, blind.policy, blind.prompts, blind.config) == (v0, v1, 24, {"seed": 9})
        judged = runs["eval"]
        assert (judged.baseline, judged.policy, judged.preference, judged.prompts) == (
            v0, v1, "labeling.demo.preferences:shorter", 24,
        )  # fmt: skip
        assert (runs["gone"].reward_model, runs["gone"].policy) == (None, v0)  # a deleted RM is not invented

        old = migrate(BEFORE).loader.project_state(BEFORE).apps.get_model("training", "TrainingRun")
        assert old.objects.get(pk=ids["generate"]).config == {
            "policy_version": v0.pk, "prompts": 50, "kind": "train", "k": 4, "round": ids["round"],
            "temperature": 0.7, "top_p": 1.0, "top_k": 0, "max_new_tokens": 64, "seed": 5,
        }  # fmt: skip
        assert old.objects.get(pk=ids["blind_eval"]).config == {"a": v0.pk, "b": v1.pk, "prompts": 24, "seed": 9}
        assert old.objects.get(pk=ids["eval"]).config == {
            "a": 0, "b": 1, "preference": "labeling.demo.preferences:shorter", "prompts": 24, "seed": 0
        }  # fmt: skip
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # the rows go with the test's flush
