# -*- test-case-name: dockerpy.test.test_volumes -*-
"""Volumes: named and anonymous data volumes, host bind mounts and tmpfs.

- :mod:`dockerpy.volumes.local`: the ``local`` volume driver (directories
  under ``<data-root>/volumes``, optionally backed by a tmpfs or a bind).
- :mod:`dockerpy.volumes.service`: the volume use-cases (create, list,
  remove, prune) and the count of which container uses which volume.
- :mod:`dockerpy.volumes.mounts`: a container's mount points, parsed from
  ``Binds``, ``Mounts``, ``VolumesFrom``, ``Tmpfs`` and ``Volumes``, and
  turned into OCI mounts and Docker's ``Mounts`` JSON.
"""
