"""The error answers every API endpoint can give, added to the OpenAPI schema: drf-spectacular
documents only what a view declares, and the schema-driven fuzz (tests/test_api_fuzz.py) found 400,
401, 403 and 404 answers that the schema did not list."""

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "Messages by the name of the field or parameter they are about, or `detail`.",
    "additionalProperties": True,
}
LABELER_PATHS = {"/api/tasks/next/", "/api/tasks/{task_id}/ranking/"}  # the rest is staff only


def _answer(description: str, schema: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema}}}}


def document_error_responses(result: dict, generator, request, public: bool) -> dict:
    """drf-spectacular's postprocessing hook: adds each error answer an operation can give, unless
    the view already documents that status."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(Error=ERROR, FieldErrors=FIELD_ERRORS)
    error, field_errors = "#/components/schemas/Error", "#/components/schemas/FieldErrors"
    for path, operations in result["paths"].items():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            answers = {
                "401": _answer("No valid token (header `Authorization: Token KEY`).", error),
                "503": _answer("The database is unavailable for a moment; try again after Retry-After.", error),
            }
            if path not in LABELER_PATHS:
                answers["403"] = _answer("Staff only.", error)
            if parameters or "requestBody" in operation:
                answers["400"] = _answer("A parameter or field is wrong: the message names it.", field_errors)
            if "requestBody" in operation:
                answers["413"] = _answer("The request body is over API_MAX_BODY_BYTES.", error)
            if any(p["in"] == "path" for p in parameters):
                answers["404"] = _answer("No such object.", error)
            for status, answer in answers.items():
                operation["responses"].setdefault(status, answer)
    return result
