import json
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling.models import Assignment, ComparisonTask, Completion, Project, Prompt, TaskCompletion
from labeling.services import do_assign_next_task, do_submit_ranking
from training.models import PolicyVersion, Recipe

PASSWORD = "a-test-password-1"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


RECIPE_FIELDS = {field.name for field in Recipe._meta.fields} - {"project"}


class ProjectFactory(factory.django.DjangoModelFactory):
    """A project with its training recipe: recipe fields (base_model, ppo_config, ...) go to the recipe."""

    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs) -> Project:
        recipe = {name: kwargs.pop(name) for name in RECIPE_FIELDS & kwargs.keys()}
        project = super()._create(model_class, *args, **kwargs)
        Recipe.objects.create(project=project, **recipe)
        return project


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    text = factory.Sequence(lambda n: f"Prompt number {n}?")


class PolicyVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyVersion

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: n)
    checkpoint = factory.LazyAttribute(lambda o: o.project.recipe.base_model)
    status = PolicyVersion.Status.CANDIDATE


class CompletionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Completion

    prompt = factory.SubFactory(PromptFactory)
    policy_version = factory.SubFactory(PolicyVersionFactory, project=factory.SelfAttribute("..prompt.project"))
    text = factory.Sequence(lambda n: f"Answer {n}.")
    token_count = 3
    finish_reason = Completion.FinishReason.EOS


class ComparisonTaskFactory(factory.django.DjangoModelFactory):
    """A task with `k` completions (default: its project's K) in display order."""

    class Meta:
        model = ComparisonTask
        skip_postgeneration_save = True

    prompt = factory.SubFactory(PromptFactory)
    project = factory.SelfAttribute("prompt.project")
    policy_version = factory.SubFactory(PolicyVersionFactory, project=factory.SelfAttribute("..project"))

    @factory.post_generation
    def k(task: ComparisonTask, create: bool, extracted: int | None, **kwargs) -> None:
        count = extracted or task.project.k
        completions = CompletionFactory.create_batch(count, prompt=task.prompt, policy_version=task.policy_version)
        TaskCompletion.objects.bulk_create(
            TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(completions)
        )


class AssignmentFactory(factory.django.DjangoModelFactory):
    """A live lease of `task` to `labeler`."""

    class Meta:
        model = Assignment

    task = factory.SubFactory(ComparisonTaskFactory)
    labeler = factory.SubFactory(UserFactory)
    leased_until = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))


def rank_every_task(project: Project, labeler) -> None:
    """`labeler` ranks every task of `project` they are handed, through the service their browser uses:
    the longer completion first, no ties."""
    project.labelers.add(labeler)
    while (assignment := do_assign_next_task(project, labeler)) is not None:
        shown = assignment.task.display_completions()
        best_first = sorted(shown, key=lambda c: -len(c.text))
        do_submit_ranking(assignment.task_id, labeler, [[c.pk] for c in best_first])


def recipe_data(project: Project, **changes) -> dict:
    """The recipe form's data for `project`'s recipe as saved, with `changes` (JSON fields as text)."""
    recipe = project.recipe
    data = {name: getattr(recipe, name) for name in RECIPE_FIELDS}
    data = {name: json.dumps(value) if isinstance(value, dict) else value for name, value in data.items()}
    data = {name: value for name, value in data.items() if value is not False}  # an unticked checkbox sends nothing
    return {**data, **changes}
