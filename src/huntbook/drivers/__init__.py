"""Data-source drivers: one :class:`~huntbook.drivers.base.Driver` subclass per environment.

Drivers are plugins of the ``huntbook.drivers`` entry-point group; the built-in ``local`` driver is
registered exactly as a third-party one would be::

    [project.entry-points."huntbook.drivers"]
    local = "huntbook.drivers.local:LocalDriver"

This package imports no driver: :func:`huntbook.plugins.registry` loads the one asked for.
"""
