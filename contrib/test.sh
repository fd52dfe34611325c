#!/bin/bash
# Run dockerpy's whole test suite (unit, integration as root, compatibility
# with the real docker CLI and docker-py), installing what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./contrib/install.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
.venv/bin/python -m twisted.trial --reporter=verbose "${@:-dockerpy}" 2>&1 | tee "$out"
status=$?
set -e
# trial ends with "PASSED (successes=N, skips=M)" or "FAILED (failures=..., errors=...)";
# print the plain summary line CI understands as well.
.venv/bin/python - "$out" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.findall(r"^(PASSED|FAILED) \((.*)\)$", text, re.M)
counts = dict.fromkeys(["successes", "failures", "errors", "skips", "expectedFailures",
                        "unexpectedSuccesses"], 0)
if m:
    for part in m[-1][1].split(","):
        k, _, v = part.strip().partition("=")
        if k in counts:
            counts[k] = int(v)
failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
print(f"{counts['successes'] + counts['expectedFailures']} passed, {failed} failed, "
      f"{counts['skips']} skipped")
PY
exit $status
