from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from labeling.signals import conversation_continued  # a signal connects once the apps are loaded
        from training.services import sample_continuation  # imports models: only once the apps are loaded

        conversation_continued.connect(sample_continuation, dispatch_uid="training.sample_continuation")
