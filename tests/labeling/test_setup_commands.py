"""create_labeler and seed_tasks: scripted set-ups for API clients and load tests."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from labeling.models import ComparisonTask, Completion, Prompt, TaskCompletion
from labeling.services import do_assign_next_task
from tests.factories import ProjectFactory
from training.services import do_register_base_policy

pytestmark = pytest.mark.django_db
User = get_user_model()


def run(*args, stdin: str = "") -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def project():
    project = ProjectFactory(name="Helpful", k=3, overlap=2)
    do_register_base_policy(project)
    return project


def test_create_labeler_makes_a_labeler_without_a_usable_password_and_prints_its_token(project):
    printed = run("create_labeler", "bot-1", "--project", "Helpful", "--print-token").strip()
    user = User.objects.get(username="bot-1")
    assert printed == Token.objects.get(user=user).key
    assert not user.has_usable_password() and not user.is_staff
    assert list(user.labeling_projects.all()) == [project]


def test_create_labeler_run_again_keeps_the_same_token_and_adds_projects(project):
    other = ProjectFactory(name="Other")
    first = run("create_labeler", "bot-1", "--project", str(project.pk), "--print-token")
    again = run("create_labeler", "bot-1", "--project", "Other", "--staff", "--print-token")
    assert first == again
    user = User.objects.get(username="bot-1")
    assert user.is_staff
    assert set(user.labeling_projects.all()) == {project, other}
    assert "labeling Helpful, Other" in run("create_labeler", "bot-1")
    assert User.objects.count() == Token.objects.count() == 1


def test_create_labeler_sets_a_password_read_from_stdin(project):
    run("create_labeler", "person", "--password-stdin", stdin="a-long-enough-passphrase\n")
    assert User.objects.get(username="person").check_password("a-long-enough-passphrase")


def test_create_labeler_refuses_a_weak_password_and_an_unknown_project_and_creates_nothing(project):
    with pytest.raises(CommandError, match="too short"):
        run("create_labeler", "person", "--password-stdin", stdin="abc\n")
    with pytest.raises(CommandError, match="No project 'Nope'"):
        run("create_labeler", "person", "--project", "Nope")
    assert not User.objects.filter(username="person").exists()


def test_seed_tasks_makes_tasks_as_the_sampler_does(project, labeler):
    out = run("seed_tasks", "--project", "Helpful", "--tasks", "25", "--batch", "10")
    assert "25 tasks with K=3 added to 'Helpful'" in out
    tasks = ComparisonTask.objects.filter(project=project)
    assert tasks.count() == 25 == Prompt.objects.filter(project=project, source="seed_tasks").count()
    assert set(tasks.values_list("state", "kind", "target_overlap")) == {("open", "train", 2)}
    assert Completion.objects.filter(prompt__project=project).count() == 75
    assert {tuple(t.items.values_list("position", flat=True)) for t in tasks} == {(0, 1, 2)}
    task = tasks.first()
    assert len({c.text for c in task.display_completions()}) == 3
    assert {c.prompt_id for c in task.display_completions()} == {task.prompt_id}
    assert do_assign_next_task(project, labeler).task == task


def test_seed_tasks_again_adds_new_prompts_with_another_k(project):
    run("seed_tasks", "--project", "Helpful", "--tasks", "4")
    run("seed_tasks", "--project", "Helpful", "--tasks", "4", "--k", "2", "--kind", "eval")
    assert ComparisonTask.objects.filter(project=project).count() == 8
    assert ComparisonTask.objects.filter(project=project, kind="eval").count() == 4
    assert TaskCompletion.objects.filter(task__project=project).count() == 4 * 3 + 4 * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "0"], "--tasks and --batch must be at least 1"),
        (["--tasks", "5", "--k", "12"], "--k between 2 and 9"),
        (["--tasks", "5", "--project", "Nope"], "No project 'Nope'"),
    ],
)
def test_seed_tasks_refuses_bad_arguments(project, args, message):
    with pytest.raises(CommandError, match=message):
        run("seed_tasks", "--project", "Helpful", *args)
    assert ComparisonTask.objects.count() == 0


def test_seed_tasks_needs_an_active_policy():
    ProjectFactory(name="Bare")
    with pytest.raises(CommandError, match="has no active policy"):
        run("seed_tasks", "--project", "Bare", "--tasks", "5")
