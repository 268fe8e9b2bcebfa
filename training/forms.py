"""The project home's launch form (a kind of run and the inputs its check takes), and the admin's
form of a project's recipe."""

import inspect

from django import forms
from django.core.exceptions import ValidationError

from labeling.models import Project
from training.configs import check_recipe
from training.models import PolicyVersion, Recipe, TrainingRun
from training.services import KINDS


class VersionChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: PolicyVersion) -> str:
        return f"v{obj.version} ({obj.get_status_display().lower()})"


class LaunchForm(forms.Form):
    """One launch button's form. Only the inputs the kind's check accepts reach it (`inputs`), so a
    field left over from another kind's form is ignored, as the API does."""

    kind = forms.ChoiceField(choices=[(kind, TrainingRun.Kind(kind).label) for kind in KINDS])
    prompts = forms.IntegerField(min_value=1, max_value=100_000, required=False, help_text="At most this many.")
    steps = forms.IntegerField(min_value=1, max_value=100_000, required=False, help_text="Default: the project's.")
    tasks = forms.IntegerField(
        min_value=1, max_value=100_000, required=False, help_text="The AI judge: at most this many."
    )
    a = VersionChoice(queryset=PolicyVersion.objects.none(), required=False, label="a (baseline)")
    b = VersionChoice(queryset=PolicyVersion.objects.none(), required=False, label="b (challenger)")

    def __init__(self, project: Project, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        versions = PolicyVersion.objects.filter(project=project).order_by("-version")
        self.fields["a"].queryset = self.fields["b"].queryset = versions

    def inputs(self) -> dict:
        """The cleaned inputs the kind's check takes; blank ones are left to its defaults."""
        takes = inspect.signature(KINDS[self.cleaned_data["kind"]].check).parameters
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name != "kind" and name in takes and value is not None
        }


class RecipeForm(forms.ModelForm):
    """A project's recipe, with its base model, config overrides and the project's selection checked
    together (training.configs.check_recipe); the admin shows it inside the project's page, and
    passes the project as posted (`project`), which may not be saved yet."""

    class Meta:
        model = Recipe
        fields = [  # the inline adds its parent, `project`
            "base_model", "temperature", "top_p", "top_k", "max_new_tokens", "algorithm", "dpo_trains_reward_model",
            "retrain_threshold", "sft_threshold", "promotion", "promotion_gate", "gate_max_disagreement_ratio",
            "gate_max_length_change", "gate_max_eos_change", "gate_blind_pairs", "reward_model_config", "ppo_config",
            "dpo_config", "sft_config",
        ]  # fmt: skip

    def __init__(self, *args, project: Project | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def _post_clean(self) -> None:
        super()._post_clean()  # the instance now holds the cleaned values
        if self.project is not None:
            self.instance.project = self.project
        try:
            check_recipe(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)
