"""Implements a hook no spec declares (a typo of relais_menu_items)."""

from core import hookimpl

kind = "feature"


@hookimpl
def relais_menu_itmes():
    return []
