# -*- test-case-name: dockerpy.test.test_registry -*-
"""The registry client: pull, push and login over the distribution API v2.

``auth`` decodes credentials and answers ``WWW-Authenticate`` challenges,
``client`` speaks HTTP to one repository (through treq, on the injected
reactor), ``manifest`` knows the manifest formats and platform selection,
and ``service`` runs the pull and push use-cases against the image store,
reporting Docker's progress messages.  Nothing here knows about HTTP
requests *to* the daemon: the API layer (``dockerpy.api.registry``) turns
progress messages into Docker's JSON stream.
"""
