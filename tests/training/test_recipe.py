"""A project's training recipe: made with the project in the admin and by the service, carried over
from the project's own fields by the migrations, and the values labeling reads through relations."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from labeling.access import SAMPLING_LIVE
from labeling.models import Project
from labeling.services import RETIRED_POLICY
from training.models import PolicyVersion, Recipe, TrainingRun
from training.services import do_create_project

pytestmark = pytest.mark.django_db

BEFORE = [("labeling", "0009_dpo_reward_model"), ("training", "0007_run_hardware")]
AFTER = [("labeling", "0010_project_fields_to_recipe")]
PROJECT = {"name": "New", "k": 4, "overlap": 1, "eval_ratio": 0, "gold_rate": 0.05, "agreement_threshold": 0.6,
           "lease_seconds": 900, "selection": "random", "control_share": 0.2,
           "suggestions": "after_submit"}  # fmt: skip
RECIPE = {"base_model": "smollm2-135m-instruct", "temperature": 0.7, "top_p": 1, "top_k": 0, "max_new_tokens": 64,
          "retrain_threshold": 100, "promotion": "automatic", "algorithm": "rloo", "dpo_trains_reward_model": "on",
          "sft_threshold": 20, "reward_model_config": "{}", "ppo_config": "{}", "dpo_config": "{}",
          "sft_config": "{}", "promotion_gate": "on", "gate_max_disagreement_ratio": 2, "gate_max_length_change": 0.5,
          "gate_max_eos_change": 0.3, "gate_blind_pairs": 0}  # fmt: skip


def admin_form(project: dict, recipe: dict) -> dict:
    """The project's add page as a browser posts it: the project's fields and its recipe inline's."""
    management = {"recipe-TOTAL_FORMS": 1, "recipe-INITIAL_FORMS": 0, "recipe-MIN_NUM_FORMS": 1,
                  "recipe-MAX_NUM_FORMS": 1}  # fmt: skip
    return {**project, **management, **{f"recipe-0-{name}": value for name, value in recipe.items()}}


def test_adding_a_project_in_the_admin_saves_its_recipe_and_registers_its_base_policy(client, admin_user):
    client.force_login(admin_user)
    assert client.post(reverse("admin:labeling_project_add"), admin_form(PROJECT, RECIPE)).status_code == 302
    project = Project.objects.get(name="New")
    assert (project.recipe.max_new_tokens, project.recipe.retrain_threshold) == (64, 100)
    policy = PolicyVersion.objects.get(project=project)
    assert (policy.version, policy.status, policy.checkpoint) == (0, "active", "smollm2-135m-instruct")

    bad = admin_form({**PROJECT, "name": "Bad"}, {**RECIPE, "base_model": "nope"})
    refused = client.post(reverse("admin:labeling_project_add"), bad)
    assert refused.status_code == 200
    assert "Unknown model alias" in refused.content.decode()
    assert not Project.objects.filter(name="Bad").exists()


def test_the_admin_refuses_uncertainty_selection_without_an_ensemble_in_the_recipe(client, admin_user):
    client.force_login(admin_user)
    form = admin_form({**PROJECT, "selection": "uncertainty"}, {**RECIPE, "reward_model_config": '{"heads": 1}'})
    refused = client.post(reverse("admin:labeling_project_add"), form)
    assert refused.status_code == 200
    assert "Uncertainty selection needs an ensemble" in refused.content.decode()
    assert not Project.objects.exists()
    ensemble = admin_form({**PROJECT, "selection": "uncertainty"}, {**RECIPE, "reward_model_config": '{"heads": 3}'})
    assert client.post(reverse("admin:labeling_project_add"), ensemble).status_code == 302


def test_the_admin_project_page_edits_the_recipe_and_lists_its_fields(client, admin_user):
    project = do_create_project(Project(name="Edited"), Recipe(max_new_tokens=32))
    client.force_login(admin_user)
    page = client.get(reverse("admin:labeling_project_changelist")).content.decode()
    assert "smollm2-135m-instruct" in page and "Automatic" in page
    change = {**PROJECT, "name": "Edited", "recipe-TOTAL_FORMS": 1, "recipe-INITIAL_FORMS": 1,
              "recipe-MIN_NUM_FORMS": 1, "recipe-MAX_NUM_FORMS": 1, "recipe-0-project": project.pk,
              **{f"recipe-0-{name}": value for name, value in {**RECIPE, "max_new_tokens": 48}.items()}}  # fmt: skip
    response = client.post(reverse("admin:labeling_project_change", args=[project.pk]), change)
    assert response.status_code == 302, response.content.decode()[:2000]
    project.recipe.refresh_from_db()
    assert project.recipe.max_new_tokens == 48
    assert PolicyVersion.objects.filter(project=project).count() == 1  # editing registers nothing new


def test_the_service_validates_the_recipe_and_stores_nothing_when_it_is_bad():
    with pytest.raises(Exception, match="lr_typo"):
        do_create_project(Project(name="Typo"), Recipe(reward_model_config={"lr_typo": 1}))
    assert not Project.objects.exists()
    project = do_create_project(Project(name="Defaults"))
    assert project.recipe.algorithm == Recipe.Algorithm.RLOO
    assert PolicyVersion.objects.get(project=project).checkpoint == project.recipe.base_model


def test_the_values_labeling_reads_through_relations_are_trainings():
    """Labeling imports nothing of training; what it reads through relations must name training's values."""
    assert RETIRED_POLICY == PolicyVersion.Status.RETIRED
    kind, statuses = dict(SAMPLING_LIVE.children)["runs__kind"], dict(SAMPLING_LIVE.children)["runs__status__in"]
    assert kind == TrainingRun.Kind.GENERATE
    assert set(statuses) == {TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING}


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_recipe_migration_carries_each_projects_training_fields_over_and_back():
    old = migrate(BEFORE).loader.project_state(BEFORE).apps.get_model("labeling", "Project")
    settings = {"base_model": "/models/mine", "temperature": 0.9, "top_p": 0.95, "top_k": 40, "max_new_tokens": 48,
                "algorithm": "dpo", "dpo_trains_reward_model": False, "retrain_threshold": 30, "sft_threshold": 0,
                "promotion": "manual", "reward_model_config": {"heads": 3}, "ppo_config": {"steps": 4},
                "dpo_config": {"beta": 0.2}, "sft_config": {"epochs": 2}}  # fmt: skip
    first = old.objects.create(name="Tuned", guidelines="Be kind.", **settings)
    second = old.objects.create(name="Defaults")
    try:
        apps = migrate(AFTER).loader.project_state(AFTER).apps
        recipes = apps.get_model("training", "Recipe").objects
        tuned = recipes.get(project_id=first.pk)
        assert {name: getattr(tuned, name) for name in settings} == settings
        assert recipes.get(project_id=second.pk).max_new_tokens == 128
        assert apps.get_model("labeling", "Project").objects.get(pk=first.pk).guidelines == "Be kind."

        back = migrate(BEFORE).loader.project_state(BEFORE).apps.get_model("labeling", "Project")
        restored = back.objects.get(pk=first.pk)
        assert {name: getattr(restored, name) for name in settings} == settings
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # the rows go with the test's flush
