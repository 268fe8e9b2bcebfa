"""Creates the demo project, its prompts, a demo admin and a demo labeler. Safe to run again."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

import labeling
from labeling.importing import prompt_texts_from_jsonl
from labeling.models import Project
from labeling.services import do_add_prompts, do_ask_for_demonstrations
from training.models import Recipe
from training.services import do_create_project

PROMPTS_FILE = Path(labeling.__file__).resolve().parent / "demo" / "prompts.jsonl"
PROJECT_NAME = "Demo: helpful answers"
GUIDELINES = """\
Rank the answers from **best to worst** for a person who asked the prompt.

1. Correct and honest beats fluent but wrong.
2. Helpful: it answers what was asked, at a sensible length.
3. Harmless: nothing unsafe, rude or invented about real people.

Tie two answers only when you truly cannot prefer one.
"""
# Small enough that a labeler who ranks 20 tasks sees the beat start a round, and a round on
# two CPU cores finish in minutes rather than hours.
DEMONSTRATIONS_ASKED = 5  # prompts whose ideal answer the demo asks labelers to write
DEMO_RECIPE = {"retrain_threshold": 20, "ppo_config": {"steps": 10, "max_new_tokens": 48}}
DEMO_USERS = [
    # (username, password, staff)
    ("admin", "demo-admin-password", True),
    ("labeler", "demo-labeler-password", False),
]


class Command(BaseCommand):
    help = "Seed the demo: a project with about 50 prompts, a demo admin and a demo labeler."

    def handle(self, *args, **options) -> None:
        texts = prompt_texts_from_jsonl(PROMPTS_FILE)
        with transaction.atomic():
            project = Project.objects.filter(name=PROJECT_NAME).first()
            if project is None:
                project = do_create_project(Project(name=PROJECT_NAME, guidelines=GUIDELINES), Recipe(**DEMO_RECIPE))
            added = do_add_prompts(project, texts, source="demo")
            if added.created:  # a few ideal answers asked for, so the labeler meets that page too
                asked = project.prompts.filter(heldout=False).order_by("id")[:DEMONSTRATIONS_ASKED]
                do_ask_for_demonstrations(project.prompts.filter(pk__in=asked.values("pk")), ask=True)
            users = [self._user(name, password, staff) for name, password, staff in DEMO_USERS]
            project.labelers.add(*users)
        self.stdout.write(
            f"Demo project {project.name!r}: {added.created} prompts added, {added.duplicates} already there."
        )
        for name, password, staff in DEMO_USERS:
            role = "admin" if staff else "labeler"
            self.stdout.write(f"  {role:8} login: {name} / {password}")

    def _user(self, username: str, password: str, staff: bool):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user
