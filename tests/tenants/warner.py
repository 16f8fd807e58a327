"""Warner: a test feature telling the operator of each country where it is enabled what is
wrong there (``relais_country_warnings``); all is well in Germany."""

from core import hookimpl

kind = "feature"


@hookimpl
def relais_country_warnings(country_code):
    if country_code == "DE":
        return []
    return [f"the sender ID INFO is generic: operators in {country_code} refuse it"]
