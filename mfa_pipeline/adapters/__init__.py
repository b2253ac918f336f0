"""Adapters: the ports implemented on Redis, SQL, Twilio, Celery and the local outbox."""
