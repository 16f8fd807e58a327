"""A plugin whose hooks object is a plain frozen dataclass: equal (and hashed) by value."""

from dataclasses import dataclass

from core import hookimpl

kind = "regulation"


@dataclass(frozen=True)
class Rules:
    country: str

    @hookimpl
    def relais_country_profile(self, country_code):
        return None


hooks = Rules("XX")
