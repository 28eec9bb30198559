"""``python -m brummer.testing --check-contracts``: report public callables without contracts."""

from __future__ import annotations

import argparse
import sys

from brummer.testing.contract_check import check_contracts


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m brummer.testing",
        description="Contract tools for brummer (and packages built on brummer.contracts).",
    )
    parser.add_argument(
        "--check-contracts",
        action="store_true",
        help="walk the package and fail on any public callable without an agreeing @contract",
    )
    parser.add_argument("--package", default="brummer", help="package to walk (default: brummer)")
    args = parser.parse_args(argv)
    if not args.check_contracts:
        parser.print_help()
        return 2
    report = check_contracts(args.package)
    for problem in report.problems:
        print(problem)
    print(
        f"{len(report.checked)} public callables in {len(report.modules)} modules checked; "
        f"{len(report.problems)} problems"
        + (f" in: {', '.join(report.failing_modules())}" if report.problems else "")
    )
    return 1 if report.problems else 0


sys.exit(_main())
