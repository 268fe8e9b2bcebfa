"""Creates a labeler account for scripted setups, adds it to projects, and prints its API token.

Safe to run again: the user, its token and its project memberships stay; --staff and a new
password are applied; nothing is taken away.
"""

import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from labeling.management.commands._common import get_project


class Command(BaseCommand):
    help = "Create (or update) a labeler: add it to projects, optionally make it staff, print its API token."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--project",
            action="append",
            default=[],
            dest="projects",
            metavar="P",
            help="A project id or name to label (repeat for several).",
        )
        parser.add_argument("--staff", action="store_true", help="Make the user staff (reads and runs in the API).")
        parser.add_argument("--print-token", action="store_true", help="Print only the API token on stdout.")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read a password from standard input (one line); otherwise a new user gets an unusable one.",
        )

    def handle(
        self, *args, username: str, projects: list[str], staff: bool, print_token: bool, password_stdin: bool, **opts
    ) -> None:
        targets = [get_project(reference) for reference in projects]
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(username=username)
            if password is not None:
                self._set_password(user, password)
            elif created:
                user.set_unusable_password()
            user.is_staff = user.is_staff or staff
            user.save()
            for project in targets:
                project.labelers.add(user)
            token, _ = Token.objects.get_or_create(user=user)
        if print_token:
            self.stdout.write(token.key)
            return
        names = ", ".join(user.labeling_projects.order_by("name").values_list("name", flat=True)) or "no project"
        role = "staff user" if user.is_staff else "labeler"
        self.stdout.write(
            f"{'Created' if created else 'Updated'} {role} {username!r}, labeling {names}. "
            "Run again with --print-token to print its API token."
        )

    def _set_password(self, user, password: str) -> None:
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        user.set_password(password)
