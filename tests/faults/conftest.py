from tests.model_fixtures import ranked_project, tiny_folder, tiny_project  # noqa: F401 - fixtures, found by name
