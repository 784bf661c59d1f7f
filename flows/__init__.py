from . import settings  # noqa: F401  (must run before prefect is imported)
