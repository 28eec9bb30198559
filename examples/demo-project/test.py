"""Demo test run: three tests pass, one fails with a stack trace, exit code 1."""

import sys
import time

print("\x1b[1m RUN \x1b[0m v1.0.0 demo", flush=True)
for name in ("adds numbers", "formats dates", "renders the header"):
    time.sleep(0.1)
    print(f"  \x1b[32m✓\x1b[0m {name}", flush=True)
time.sleep(0.1)
print("  \x1b[31m✗\x1b[0m parses the config", flush=True)
print("TypeError: Cannot read properties of undefined (reading 'port')", file=sys.stderr)
print("    at parseConfig (src/config.ts:14:23)", file=sys.stderr)
print("    at Object.<anonymous> (test/config.test.ts:8:5)", file=sys.stderr)
print("    at runTest (node_modules/runner/index.js:120:11)", file=sys.stderr, flush=True)
print("", flush=True)
print("Tests: 1 failed, 3 passed, 4 total", flush=True)
sys.exit(1)
