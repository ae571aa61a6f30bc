"""Check JSON bodies against xAI's official OpenAPI document (for tests).

The document (``xai-openapi.json``, OpenAPI 3.1, so its schemas are JSON
Schema 2020-12) is not shipped with convkit: :func:`find_document` looks for
``$CONVKIT_SHARED_DIR/xai/xai-openapi.json``, then for
``shared/xai/xai-openapi.json`` beside the checkout convkit runs from, and
returns ``None`` when neither exists, so tests can skip with that reason.
Its ``$ref`` s (``#/components/schemas/...``) are resolved with
``referencing``; validation uses ``jsonschema`` (both in the ``test`` extra,
imported only when a document is loaded)::

    doc = load_document()                 # or OpenAPIDocument.from_file(path)
    doc.validate("ChatRequest", body)     # raises SchemaMismatch listing every violation
    doc.errors("ChatResponse", payload)   # the same violations as a list of strings

Formats (``int32`` ...) are annotations, as JSON Schema 2020-12 makes them.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ValidationError

__all__ = ["OpenAPIDocument", "SchemaMismatch", "find_document", "load_document", "validate_chat_request"]

_BASE_URI = "urn:convkit:xai-openapi"


class SchemaMismatch(ValidationError):
    """A body does not validate against a schema of the document; ``errors`` lists why."""

    def __init__(self, schema: str, errors: list[str]) -> None:
        self.schema = schema
        self.errors = errors
        listed = "; ".join(errors[:10]) + (f"; ... ({len(errors)} in all)" if len(errors) > 10 else "")
        super().__init__(f"the body does not validate against {schema}: {listed}")


def find_document() -> Path | None:
    """Where xAI's OpenAPI document is: ``$CONVKIT_SHARED_DIR``, else ``../shared`` beside the checkout."""
    candidates = []
    env = os.environ.get("CONVKIT_SHARED_DIR")
    if env:
        candidates.append(Path(env) / "xai" / "xai-openapi.json")
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "xai" / "xai-openapi.json")
    for path in candidates:
        if path.is_file():
            return path
    return None


class OpenAPIDocument:
    """An OpenAPI document whose ``components.schemas`` validate bodies."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        schemas = document.get("components", {}).get("schemas")
        if not isinstance(schemas, Mapping):
            raise ValidationError("an OpenAPI document has components.schemas")
        self.document = document
        referencing: Any = importlib.import_module("referencing")
        specs: Any = importlib.import_module("referencing.jsonschema")
        self._jsonschema: Any = importlib.import_module("jsonschema")
        resource = referencing.Resource.from_contents(document, default_specification=specs.DRAFT202012)
        self._registry = referencing.Registry().with_resource(_BASE_URI, resource)
        self._validators: dict[str, Any] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> OpenAPIDocument:
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    @property
    def schema_names(self) -> list[str]:
        return sorted(self.document["components"]["schemas"])

    def _validator(self, schema: str) -> Any:
        validator = self._validators.get(schema)
        if validator is None:
            if schema not in self.document["components"]["schemas"]:
                raise ValidationError(f"the document has no schema {schema!r}")
            ref = {"$ref": f"{_BASE_URI}#/components/schemas/{schema}"}
            validator = self._jsonschema.Draft202012Validator(ref, registry=self._registry)
            self._validators[schema] = validator
        return validator

    def errors(self, schema: str, instance: Any) -> list[str]:
        """Every violation of ``components.schemas[schema]`` by ``instance`` ("path: message")."""
        found = sorted(self._validator(schema).iter_errors(instance), key=lambda e: list(map(str, e.path)))
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found]

    def validate(self, schema: str, instance: Any) -> None:
        """Raise :class:`SchemaMismatch` unless ``instance`` validates against ``schema``."""
        errors = self.errors(schema, instance)
        if errors:
            raise SchemaMismatch(schema, errors)


@functools.cache
def _load(path: Path) -> OpenAPIDocument:
    return OpenAPIDocument.from_file(path)


def load_document(path: str | os.PathLike[str] | None = None) -> OpenAPIDocument:
    """The document at ``path`` or :func:`find_document`'s (cached); raises FileNotFoundError."""
    found = Path(path) if path is not None else find_document()
    if found is None or not found.is_file():
        raise FileNotFoundError(
            f"xAI's OpenAPI document was not found ({found or 'no path'}); set CONVKIT_SHARED_DIR to the "
            "folder holding xai/xai-openapi.json"
        )
    return _load(found.resolve())


def validate_chat_request(body: Any, *, document: OpenAPIDocument | None = None) -> None:
    """Raise :class:`SchemaMismatch` unless ``body`` is a valid ``ChatRequest``."""
    (document or load_document()).validate("ChatRequest", body)
