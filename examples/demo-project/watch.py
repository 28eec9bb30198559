"""Demo watcher: logs a rebuild every half second, with a warning now and then."""

import random
import sys
import time

files = ["src/App.tsx", "src/main.ts", "src/api.ts", "src/styles.css"]
n = 0
print("watching for file changes...", flush=True)
while True:
    n += 1
    changed = random.choice(files)
    print(f"\x1b[33m[watch]\x1b[0m {changed} changed, rebuilding", flush=True)
    print(
        f"\x1b[32m[watch]\x1b[0m compiled successfully in {random.randint(20, 90)} ms (#{n})",
        flush=True,
    )
    if n % 7 == 0:
        print(f"warning: unused variable 'tmp' in {changed}:12", file=sys.stderr, flush=True)
    time.sleep(0.5)
