"""The REST API under ``/api/v1`` (its OpenAPI document is made from the typed schemas)."""
