"""The project home's launch form: a kind of run and the inputs its check takes."""

import inspect

from django import forms

from labeling.models import Project
from training.models import PolicyVersion, TrainingRun
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
