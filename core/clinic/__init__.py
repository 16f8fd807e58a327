"""The clinic's domain: staff, patients, consent, audit trail, settings and API keys."""
