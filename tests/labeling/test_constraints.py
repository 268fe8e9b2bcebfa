import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeling.models import Project, Prompt
from labeling.services import do_add_prompts
from tests.factories import PolicyVersionFactory, ProjectFactory, PromptFactory
from training.models import PolicyVersion

pytestmark = pytest.mark.django_db


def test_the_database_refuses_a_duplicate_prompt_in_a_project():
    prompt = PromptFactory(text="Why is the sky blue?")
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.create(project=prompt.project, text="Why is the sky blue?")
    assert Prompt.objects.count() == 1


def test_the_same_prompt_may_appear_in_two_projects():
    PromptFactory(text="Why is the sky blue?")
    PromptFactory(text="Why is the sky blue?")
    assert Prompt.objects.count() == 2


def test_a_form_is_told_the_prompt_is_a_duplicate():
    prompt = PromptFactory(text="Why is the sky blue?")
    with pytest.raises(ValidationError, match="already in the project"):
        Prompt(project=prompt.project, text="Why is the sky blue?").full_clean()


def test_adding_prompts_skips_and_counts_duplicates():
    project = ProjectFactory()
    PromptFactory(project=project, text="old")
    added = do_add_prompts(project, ["old", "new", "new", "another"], source="test")
    assert (added.created, added.duplicates) == (2, 2)
    assert sorted(project.prompts.values_list("text", flat=True)) == ["another", "new", "old"]


def test_adding_an_empty_prompt_stores_nothing():
    project = ProjectFactory()
    with pytest.raises(ValidationError, match="cannot be empty"):
        do_add_prompts(project, ["fine", "   "])
    assert project.prompts.count() == 0


def test_a_very_long_prompt_is_still_unique_per_project():
    project = ProjectFactory()
    long_text = "word " * 20_000
    do_add_prompts(project, [long_text])
    assert do_add_prompts(project, [long_text]).duplicates == 1


def test_the_database_refuses_a_second_active_policy_in_a_project():
    first = PolicyVersionFactory(version=0, status=PolicyVersion.Status.ACTIVE)
    PolicyVersionFactory(project=first.project, version=1, status=PolicyVersion.Status.CANDIDATE)
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVersion.objects.filter(project=first.project, version=1).update(status=PolicyVersion.Status.ACTIVE)
    # Another project may have its own active policy.
    PolicyVersionFactory(version=0, status=PolicyVersion.Status.ACTIVE)
    assert PolicyVersion.objects.filter(status=PolicyVersion.Status.ACTIVE).count() == 2


@pytest.mark.parametrize("k", [1, 10])
def test_the_database_refuses_k_outside_2_to_9(k):
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.create(name="bad", k=k)


def test_a_form_gets_a_readable_message_for_a_bad_k():
    with pytest.raises(ValidationError, match="K must be between 2 and 9"):
        Project(name="bad", k=12).full_clean()
