from ..errors import DataError  # noqa: F401  (temporary shim, removed once all imports use helpers.errors)
