"""Relais core: the minimal, tenant-aware kernel.

Plugin authors import :data:`hookimpl` from here::

    from core import hookimpl
"""

import pluggy

hookimpl = pluggy.HookimplMarker("relais")

__all__ = ["hookimpl"]
