"""Demo build: a few steps, then success."""

import time

for step in ("cleaning dist/", "compiling 42 modules", "bundling", "minifying"):
    print(f"[build] {step}...", flush=True)
    time.sleep(0.2)
print("[build] build completed successfully: dist/app.js 12.3 kB", flush=True)
