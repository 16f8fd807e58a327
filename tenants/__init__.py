"""Tenancy: countries and clinics, subdomain resolution, query scoping, the operator console."""
