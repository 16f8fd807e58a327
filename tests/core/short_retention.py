"""A test regulation plugin: short retention periods, answered for any country.

The tests enable it for France only: Germany must then fall back to the core's default,
which shows that only the plugins enabled for a country answer ``relais_retention_policy``.
"""

from datetime import timedelta

from core import hookimpl
from core.regulation import Retention

kind = "regulation"

SHORT = Retention(contents=timedelta(days=30), records=timedelta(days=90))


@hookimpl
def relais_retention_policy(country_code):
    return SHORT
