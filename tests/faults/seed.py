"""Migrates DATABASE_URL and seeds it for a fault test: a project of synthetic tasks, labelers with
API tokens and session cookies, a staff token. Prints one JSON line.

    DATABASE_URL=postgres://... python -m tests.faults.seed --tasks 2000 --labelers 16
"""

import argparse
import io
import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--labelers", type=int, required=True)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=2)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from labeling.models import Project
    from training.services import do_create_project

    call_command("migrate", verbosity=0)
    project = do_create_project(Project(name="faults", k=args.k, overlap=args.overlap, lease_seconds=600))
    call_command("seed_tasks", project=str(project.pk), tasks=args.tasks, k=args.k, stdout=io.StringIO())
    tokens, cookies = [], []
    for n in range(args.labelers):
        user = get_user_model().objects.create_user(f"labeler-{n}")
        project.labelers.add(user)
        tokens.append(Token.objects.create(user=user).key)
        browser = Client()
        browser.force_login(user)
        cookies.append(browser.cookies["sessionid"].value)
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    staff_token = Token.objects.create(user=staff).key
    print(json.dumps({"project": project.pk, "tokens": tokens, "sessions": cookies, "staff_token": staff_token}))


if __name__ == "__main__":
    main()
