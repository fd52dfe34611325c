# -*- test-case-name: dockerpy.test.test_build_conformance -*-
"""``python -m dockerpy.test.build_corpus [CASE...]``: write expected.json
for each case from the Docker daemon at ``$DOCKER_HOST``."""

import sys

from dockerpy.test.build_corpus import main

sys.exit(main(sys.argv[1:]))
