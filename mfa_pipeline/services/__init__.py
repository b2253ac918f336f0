"""Use cases. The API and the Celery tasks both call these; neither holds business rules."""
