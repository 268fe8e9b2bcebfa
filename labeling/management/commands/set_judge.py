"""Sets a project's AI judge: a local model or an OpenAI-compatible endpoint (its key stays in an
environment variable of the worker; only the variable's name is stored)."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from labeling.management.commands._common import get_project
from labeling.services import do_set_judge


class Command(BaseCommand):
    help = "Set a project's AI judge, which ranks tasks as one more (AI) labeler."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project id or name.")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--local", metavar="MODEL", help="'bundled', a Hugging Face id, or a path on the worker.")
        where.add_argument(
            "--endpoint", metavar="BASE_URL", help="An OpenAI-compatible base URL, like http://host:8000/v1."
        )
        parser.add_argument("--model", help="With --endpoint: the model name it serves.")
        parser.add_argument("--key-env", default="", help="With --endpoint: the environment variable holding the key.")
        parser.add_argument(
            "--prompt-file", type=Path, help="A file with the judging prompt (default: the built-in one)."
        )
        parser.add_argument("--weight-cap", type=float, help="The most its rankings weigh in the reward model's loss.")
        parser.add_argument("--max-calls", type=int, help="With --endpoint: calls a run may make at most.")

    def handle(self, *args, project: str, local: str | None, endpoint: str | None, model: str | None, **options):
        target = get_project(project)
        prompt_file, weight_cap, max_calls = options["prompt_file"], options["weight_cap"], options["max_calls"]
        if endpoint and not model:
            raise CommandError("--endpoint needs --model, the name of the model it serves.")
        fields = {"backend": "local", "model": local, "base_url": "", "api_key_env": ""} if local else {
            "backend": "endpoint", "model": model, "base_url": endpoint, "api_key_env": options["key_env"],
        }  # fmt: skip
        if prompt_file is not None:
            try:
                fields["judging_prompt"] = prompt_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"Cannot read {prompt_file}: {exc}") from None
        if weight_cap is not None:
            fields["weight_cap"] = weight_cap
        if max_calls is not None:
            fields["max_calls"] = max_calls
        try:
            judge = do_set_judge(target, **fields)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            f"{target.name}: AI judge {judge.identity}, prompt version {judge.prompt_version}, weight cap "
            f"{judge.weight_cap:.2f}; it ranks as {judge.account.get_username()}. Run it with "
            f"`manage.py judge --project {target.pk}`."
        )
