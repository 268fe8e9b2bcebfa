"""Who reaches what: every route the URL resolver knows, as four people, on project A's rows.

The routes come from `get_resolver()`, includes and all, so a new route cannot be forgotten: a
route without a rule below fails, named. Each rule fills the route in with one of project A's
objects (its task, run, versions, ...) and says what each member of the cast gets:

- anonymous: the login page (302), or 401 from the API;
- a labeler of A: their own project's pages and tasks; 403 from the API's staff endpoints;
  the staff pages send them to the admin login;
- a labeler of B: 404 for everything of project A a labeler could reach (never 403: it would
  tell them the row exists), and like A elsewhere;
- staff (an admin): everything; a labeler's task page is a labeler's own, so 404 for A's task.

The API is asked with each user's token, the rest with a session. Each person's request runs in
a transaction rolled back afterwards, so all four meet the same rows.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from rest_framework.authtoken.models import Token, TokenProxy

from labeling.models import Assignment, ComparisonTask, Demonstration, Judge, Ranking
from labeling.services import do_set_judge
from tests.factories import AssignmentFactory, ComparisonTaskFactory, ProjectFactory, PromptFactory, UserFactory
from training.models import EvalPair, PolicyVersion, RankingScore, RewardModelVersion, TrainingRun

ANON, A, B, STAFF = "anonymous", "labeler of A", "labeler of B", "staff"
CAST = (ANON, A, B, STAFF)

LOGIN = "302 → login"
ADMIN_LOGIN = "302 → admin login"


def outcome(response) -> str:
    """A response as the matrix writes it: the status, and where a redirect goes if to a login."""
    if response.status_code == 302:
        if response["Location"].startswith("/accounts/login/"):
            return LOGIN
        if response["Location"].startswith("/admin/login/"):
            return ADMIN_LOGIN
    return str(response.status_code)


# --- the world: projects A and B and project A's rows ------------------------------------------


@dataclass
class World:
    users: dict[str, object]
    project: object  # project A
    task: ComparisonTask  # leased to the labeler of A, live
    ranked: ComparisonTask  # ranked by the labeler of A
    ranking: Ranking
    eval_task: ComparisonTask  # a blind-evaluation task (K=2)
    run: TrainingRun  # live, so it can be cancelled
    policy: PolicyVersion
    reward_model: RewardModelVersion
    rows: dict[type, object] = field(default_factory=dict)  # one row per model the admin lists


def build_world() -> World:
    a_user, b_user = UserFactory(username="labeler_a"), UserFactory(username="labeler_b")
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    project, other = ProjectFactory(name="A", k=2), ProjectFactory(name="B", k=2)
    project.labelers.add(a_user)
    other.labelers.add(b_user)
    policy = PolicyVersion.objects.create(project=project, version=0, checkpoint="x", status="active")
    PolicyVersion.objects.create(project=other, version=0, checkpoint="x", status="active")
    task = ComparisonTaskFactory(prompt__project=project, policy_version=policy)
    AssignmentFactory(task=task, labeler=a_user)
    ranked = ComparisonTaskFactory(prompt__project=project, policy_version=policy)
    AssignmentFactory(task=ranked, labeler=a_user, state=Assignment.State.SUBMITTED)
    ranking = Ranking.objects.create(task=ranked, labeler=a_user, order=[[c.pk] for c in ranked.display_completions()])
    ComparisonTask.objects.filter(pk=ranked.pk).update(state=ComparisonTask.State.COMPLETE)
    reward_model = RewardModelVersion.objects.create(
        project=project, version=1, checkpoint="x", trained_through_ranking_id=ranking.pk,
        trained_through_time=timezone.now(), rankings_count=1,
    )  # fmt: skip
    run = TrainingRun.objects.create(project=project, kind="ppo", status="running", progress=0.5, launched_by=staff)
    eval_run = TrainingRun.objects.create(project=project, kind="blind_eval", status="succeeded")
    candidate = PolicyVersion.objects.create(project=project, version=1, checkpoint="y", status="candidate")
    eval_task = ComparisonTaskFactory(prompt__project=project, policy_version=candidate, kind="eval", k=2)
    eval_pair = EvalPair.objects.create(task=eval_task, run=eval_run, version_a=policy, version_b=candidate)
    asked = PromptFactory(project=project, needs_demonstration=True)
    demonstration = Demonstration.objects.create(
        prompt=PromptFactory(project=project), labeler=a_user, text="An answer."
    )
    for user in (a_user, b_user, staff):
        Token.objects.create(user=user)
    interval = IntervalSchedule.objects.create(every=60, period="seconds")
    rows = {
        ComparisonTask: task,
        Ranking: ranking,
        Assignment: task.assignments.get(),
        Demonstration: demonstration,
        Judge: do_set_judge(project, backend="local", model="bundled"),
        TrainingRun: run,
        PolicyVersion: policy,
        RewardModelVersion: reward_model,
        EvalPair: eval_pair,
        RankingScore: RankingScore.objects.create(
            ranking=ranking, reward_model=reward_model, scores=[1, 0], pairs=1, agreed=1
        ),
        TokenProxy: TokenProxy.objects.get(user=a_user),
        IntervalSchedule: interval,
        CrontabSchedule: CrontabSchedule.objects.create(),
        SolarSchedule: SolarSchedule.objects.create(event="sunrise", latitude=1, longitude=1),
        ClockedSchedule: ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(days=1)),
        PeriodicTask: PeriodicTask.objects.create(name="a check", task="training.fail_stale_runs", interval=interval),
    }
    rows[Group] = Group.objects.create(name="reviewers")
    rows[type(a_user)] = a_user
    rows[type(project)] = project
    rows[type(asked)] = asked
    rows[type(task.items.first().completion)] = task.items.first().completion
    users = {ANON: None, A: a_user, B: b_user, STAFF: staff}
    return World(users, project, task, ranked, ranking, eval_task, run, policy, reward_model, rows)


# --- the rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How to ask for a route, and what each of the cast gets."""

    expect: dict[str, str]
    kwargs: Callable[[World], dict] = lambda w: {}
    method: str = "get"
    query: Callable[[World], dict] = lambda w: {}
    data: Callable[[World], dict] = lambda w: {}
    path: Callable[[World], str] | None = None  # for routes without a name


def expect(anon: str | int, a: str | int, b: str | int, staff: str | int) -> dict[str, str]:
    return {ANON: str(anon), A: str(a), B: str(b), STAFF: str(staff)}


STAFF_PAGE = expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)
STAFF_API = expect(401, 403, 403, 200)


def project_kwargs(w: World) -> dict:
    return {"project_id": w.project.pk}


def task_kwargs(w: World) -> dict:
    return {"task_id": w.task.pk}


def run_kwargs(w: World) -> dict:
    return {"run_id": w.run.pk}


def an_order(w: World) -> list[list[int]]:
    return [[c.pk] for c in w.task.display_completions()]


RULES: dict[str, Rule | tuple[Rule, ...]] = {
    # the labeler's pages
    "labeling:home": Rule(expect(LOGIN, 200, 200, 200)),
    "labeling:next": Rule(expect(LOGIN, 302, 404, 302), project_kwargs),
    "labeling:demonstrations": (
        Rule(expect(LOGIN, 200, 404, 200), project_kwargs),
        Rule(
            expect(LOGIN, 302, 404, 302),
            project_kwargs,
            "post",
            data=lambda w: {"prompt": w.rows[type(w.project.prompts.first())].pk, "text": "My ideal answer."},
        ),
    ),
    "labeling:task": Rule(expect(LOGIN, 200, 404, 404), task_kwargs),
    "labeling:submit": Rule(
        expect(LOGIN, 302, 404, 404),
        task_kwargs,
        "post",
        data=lambda w: {f"rank-{c.pk}": str(i + 1) for i, c in enumerate(w.task.display_completions())},
    ),
    "labeling:skip": Rule(expect(LOGIN, 302, 404, 404), task_kwargs, "post", data=lambda w: {"reason": "Unsure."}),
    # the labeler's own task, not ranked yet: refused in words (rank first); anyone else's is a 404
    "labeling:continue": Rule(expect(LOGIN, 422, 404, 404), task_kwargs, "post", data=lambda w: {"text": "And then?"}),
    # the staff pages
    "training:projects": Rule(STAFF_PAGE),
    "training:run": Rule(STAFF_PAGE, run_kwargs),
    "training:cancel": Rule(expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 302), run_kwargs, "post"),
    "training:project": Rule(STAFF_PAGE, project_kwargs),
    "training:launch": Rule(
        expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 302), project_kwargs, "post", data=lambda w: {"kind": "rm"}
    ),
    "training:dashboard": Rule(STAFF_PAGE, project_kwargs),
    # the API: a labeler's own work
    "api:next-task": Rule(expect(401, 200, 404, 200), query=lambda w: {"project": w.project.pk}),
    "api:submit-ranking": Rule(expect(401, 201, 404, 404), task_kwargs, "post", data=lambda w: {"order": an_order(w)}),
    # the API: staff reads and actions
    "api:metrics": Rule(STAFF_API, query=lambda w: {"project": w.project.pk}),
    "api:schema": Rule(expect(200, 200, 200, 200)),
    "api:docs": Rule(expect(200, 200, 200, 200)),
    "api:api-root": Rule(expect(401, 200, 200, 200)),
    "api:project-list": Rule(STAFF_API),
    "api:project-detail": Rule(STAFF_API, lambda w: {"pk": w.project.pk}),
    "api:project-export": Rule(STAFF_API, lambda w: {"pk": w.project.pk}, query=lambda w: {"kind": "pairs"}),
    "api:project-prompts": Rule(
        expect(401, 403, 403, 201), lambda w: {"pk": w.project.pk}, "post", data=lambda w: {"prompts": ["New?"]}
    ),
    "api:project-judge": (
        Rule(STAFF_API, lambda w: {"pk": w.project.pk}),
        Rule(
            expect(401, 403, 403, 200),
            lambda w: {"pk": w.project.pk},
            "put",
            data=lambda w: {"backend": "local", "model": "bundled"},
        ),
    ),  # fmt: skip
    "api:task-list": Rule(STAFF_API, query=lambda w: {"project": w.project.pk}),
    "api:ranking-list": Rule(STAFF_API, query=lambda w: {"project": w.project.pk}),
    "api:policy-list": Rule(STAFF_API, query=lambda w: {"project": w.project.pk}),
    "api:reward-model-list": Rule(STAFF_API, query=lambda w: {"project": w.project.pk}),
    "api:run-list": (
        Rule(STAFF_API, query=lambda w: {"project": w.project.pk}),
        Rule(expect(401, 403, 403, 201), method="post", data=lambda w: {"project": w.project.pk, "kind": "rm"}),
    ),
    "api:run-detail": Rule(STAFF_API, lambda w: {"pk": w.run.pk}),
    "api:run-cancel": Rule(STAFF_API, lambda w: {"pk": w.run.pk}, "post"),
    # logging in and out
    "login": Rule(expect(200, 200, 200, 200)),
    "logout": Rule(expect(LOGIN, LOGIN, LOGIN, LOGIN), method="post"),
    "favicon.ico": Rule(expect(302, 302, 302, 302), path=lambda w: "/favicon.ico"),
    # the admin's own pages
    "admin:index": Rule(STAFF_PAGE),
    "admin:login": Rule(expect(200, 200, 200, 302)),
    "admin:logout": Rule(expect(302, 302, 302, LOGIN), method="post"),
    "admin:password_change": Rule(STAFF_PAGE),
    "admin:password_change_done": Rule(STAFF_PAGE),
    "admin:autocomplete": Rule(
        STAFF_PAGE, query=lambda w: {"app_label": "labeling", "model_name": "prompt", "field_name": "project"}
    ),
    "admin:jsi18n": Rule(STAFF_PAGE),
    "admin:view_on_site": Rule(
        expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 302),
        lambda w: {"content_type_id": ContentType.objects.get_for_model(TrainingRun).pk, "object_id": w.run.pk},
    ),
    "admin:app_list": Rule(STAFF_PAGE, lambda w: {"app_label": "labeling"}),
    "admin/(?P<url>.*)$": Rule(expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 404), path=lambda w: "/admin/no-such/"),
    "admin:auth_user_password_change": Rule(STAFF_PAGE, lambda w: {"id": w.users[A].pk}),
    # the project admin's import and export pages
    "admin:labeling_project_import": Rule(STAFF_PAGE, project_kwargs),
    "admin:labeling_project_export": Rule(STAFF_PAGE, project_kwargs),
    "admin:labeling_project_download": Rule(STAFF_PAGE, project_kwargs, query=lambda w: {"format": "pairs"}),
}

ADMIN_VIEWS = ("changelist", "add", "history", "delete", "change")
ADMIN_OBJECT_REDIRECT = re.compile(r"^admin/(\w+)/(\w+)/<path:object_id>/$")


def admin_model_rule(key: str) -> Rule | None:
    """The rule of a ModelAdmin's own page (list, add, change, history, delete, and the bare
    object URL that redirects to change), for every registered model: staff get it, nobody else."""
    for model in admin.site._registry:
        opts = model._meta
        for view in ADMIN_VIEWS:
            if key == f"admin:{opts.app_label}_{opts.model_name}_{view}":
                kwargs = (lambda w, m=model: {"object_id": w.rows[m].pk}) if view not in ("changelist", "add") else None
                return Rule(STAFF_PAGE, kwargs or (lambda w: {}))
        if key == f"admin/{opts.app_label}/{opts.model_name}/<path:object_id>/":
            return Rule(
                expect(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 302),
                path=lambda w, m=model, o=opts: f"/admin/{o.app_label}/{o.model_name}/{w.rows[m].pk}/",
            )
    return None


# --- the routes, from the resolver ----------------------------------------------------------------


def walk(resolver: URLResolver, prefix: str = "", namespaces: tuple[str, ...] = ()):
    """(route, name) of every pattern, includes followed; name is None for unnamed patterns. The
    route is joined as Django's ResolverMatch.route joins it (an inner regex loses its ^)."""
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern).removeprefix("^") if prefix else str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = namespaces + ((pattern.namespace,) if pattern.namespace else ())
            yield from walk(pattern, route, inner)
        elif isinstance(pattern, URLPattern):
            name = ":".join((*namespaces, pattern.name)) if pattern.name else None
            yield route, name


ROUTES = list(walk(get_resolver()))


def is_format_suffix(route: str) -> bool:
    """DRF's `.json`-style twins of each API route; they take the route's own rule."""
    return "(?P<format>" in route or "<drf_format_suffix:format>" in route


def rules_for(route: str, name: str | None) -> tuple[Rule, ...]:
    key = name or route
    rule = RULES.get(key) or admin_model_rule(key)
    if rule is None:
        pytest.fail(
            f"No access rule for the route {route!r} (name {name!r}): add one to RULES in "
            "tests/test_access_matrix.py saying what anonymous, both labelers and staff get.",
            pytrace=False,
        )
    return rule if isinstance(rule, tuple) else (rule,)


def url_of(rule: Rule, route: str, name: str | None, world: World) -> str:
    if rule.path is not None:
        return rule.path(world)
    kwargs = rule.kwargs(world)
    if is_format_suffix(route):
        kwargs["format"] = "json"
    return reverse(name, kwargs=kwargs)


def ask(rule: Rule, url: str, who: str, world: World) -> str:
    """One person's request, in a transaction rolled back afterwards."""
    user = world.users[who]
    with transaction.atomic():
        client = Client()
        headers = {}
        if user is not None and url.startswith("/api/"):
            headers["Authorization"] = f"Token {Token.objects.get(user=user).key}"
        elif user is not None:
            client.force_login(user)
        if rule.method == "get":
            response = client.get(url, rule.query(world), headers=headers)
        elif url.startswith("/api/"):
            send = getattr(client, rule.method)  # post, or put
            response = send(url, rule.data(world), content_type="application/json", headers=headers)
        else:
            response = client.post(url, rule.data(world), headers=headers)
        transaction.set_rollback(True)
    return outcome(response)


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "name"), ROUTES, ids=[f"{name or route} {route}" for route, name in ROUTES])
def test_every_route_lets_in_exactly_who_it_should(route, name):
    world = build_world()
    wrong = []
    for rule in rules_for(route, name):
        url = url_of(rule, route, name, world)
        assert resolve(url.split("?")[0]).route == route, f"{url} does not reach {route}"
        for who in CAST:
            got = ask(rule, url, who, world)
            if got != rule.expect[who]:
                wrong.append(f"{rule.method.upper()} {url} as {who}: {got}, expected {rule.expect[who]}")
    assert not wrong, "\n".join(wrong)


def test_every_rule_names_a_route_that_exists():
    keys = {name or route for route, name in ROUTES}
    assert sorted(set(RULES) - keys) == []


def test_every_model_the_admin_lists_has_a_row_in_the_world(db):
    world = build_world()
    assert [m._meta.label for m in admin.site._registry if m not in world.rows] == []


# --- leaks found, and their regression cases ----------------------------------------------------


@pytest.fixture
def former_labeler_world(db) -> World:
    """Project A's labeler, taken off the project while holding a live lease on its task."""
    world = build_world()
    world.project.labelers.remove(world.users[A])
    return world


@pytest.mark.parametrize("name", ["labeling:task", "labeling:submit", "labeling:skip", "api:submit-ranking"])
def test_a_labeler_taken_off_a_project_can_no_longer_reach_its_tasks(former_labeler_world, name):
    """Their lease was on a project they no longer label: the page, a ranking and a skip are 404."""
    world = former_labeler_world
    assert ask(RULES[name], reverse(name, kwargs=task_kwargs(world)), A, world) == "404"
    assert not Ranking.objects.filter(task=world.task).exists()
