"""Relais core: the minimal, tenant-aware kernel, and the clinic, delivery and web areas
above it (docs/architecture.md).

Plugins import from :mod:`core.plugin_api` only; :data:`hookimpl` is defined here so that
the kernel's hookspecs and the public API share one marker.
"""

import pluggy

hookimpl = pluggy.HookimplMarker("relais")

__all__ = ["hookimpl"]
