"""The ``course`` command: instructor tooling around nbgrader."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coursetools import layout


def _labs_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="lab ids or prefixes (default: every lab)")


def cmd_build(args) -> int:
    from coursetools.build import build

    course = layout.course_root(args.dir)
    labs = layout.select_labs(course, args.labs)
    build(course, labs)
    print(f"regenerated release/ and solutions/ for {', '.join(labs)}")
    return 0


def cmd_check(args) -> int:
    from coursetools.build import out_of_sync
    from coursetools.nbgrader_ops import validate

    course = layout.course_root(args.dir)
    labs = layout.select_labs(course, args.labs)
    failures = 0
    for problem in out_of_sync(course, labs):
        print(f"OUT OF SYNC  {problem}  (run `course build`)")
        failures += 1
    for lab in labs:
        checks = [("release", True)] + ([] if args.skip_source else [("source", False)])
        for step, invert in checks:
            result = validate(course, layout.notebook(course, step, lab), invert=invert)
            what = "validate --invert" if invert else "validate"
            if result.ok:
                print(f"ok           {step}/{lab}: nbgrader {what}")
                continue
            failures += 1
            print(f"FAILED       {step}/{lab}: nbgrader {what}")
            for label, cells in (("test passed on the blank release", result.passed),
                                 ("test failed", result.failed),
                                 ("read-only cell changed", result.changed)):
                for source in cells:
                    print(f"    {label}: {source.splitlines()[0] if source else '(empty)'}")
            for error in result.errors:
                print("    " + error.strip().splitlines()[-1] if error.strip() else "")
    print("all checks passed" if not failures else f"{failures} problem(s)")
    return 1 if failures else 0


def cmd_demo(args) -> int:
    from coursetools.demo import format_table, run_demo

    course = Path(args.dir).resolve() if args.dir else layout.course_root()
    course.mkdir(parents=True, exist_ok=True)
    result = run_demo(course, args.labs)
    print()
    print(format_table(result.rows))
    print()
    print("feedback:")
    for path in result.feedback:
        print(f"  {path}")
    print(f"grades CSV: {result.grades_csv}")
    return 0


def cmd_bench(args) -> int:
    from coursetools import bench

    course = layout.course_root(args.dir)
    specs = bench.load_specs()
    results = []
    for lab in layout.select_labs(course, args.labs):
        print(f"running {lab} ...", flush=True)
        results.append(bench.run_lab(course, lab, specs.get(lab, {})))
    print()
    print(bench.format_table(results))
    if args.json:
        Path(args.json).write_text(bench.to_json(results) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if all(r.ok for r in results) else 1


def cmd_fidelity(args) -> int:
    import json

    from coursetools import fidelity

    course = layout.course_root(args.dir)
    summaries = []
    for lab in layout.select_labs(course, args.labs):
        cases = fidelity.load_cases(lab)
        print(f"grading {len(cases)} cases of {lab} ...", flush=True)
        outcomes, _ = fidelity.run_lab(lab, cases, course)
        summaries.append(fidelity.summary(lab, outcomes))
    print()
    print(fidelity.format_report(summaries))
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2) + "\n")
    return 1 if any(s["disagreements"] for s in summaries) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="regenerate release/ and solutions/ from source/ with nbgrader")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("check", help="validate source (passes) and release (every test fails); "
                                     "release/ and solutions/ in sync with source/")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--skip-source", action="store_true",
                   help="skip running the reference solutions (the slow part)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("demo", help="grade a reference and a blank demo student on every lab "
                                    "and print the score table")
    _labs_arg(p)
    p.add_argument("--dir", help="run in this directory instead of the course root "
                                 "(created and set up from this checkout's source/ if needed)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="run each lab's reference top-to-bottom: wall time vs budget, "
                                     "key metric vs hidden threshold")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("fidelity", help="autograde each lab's mutants and variants "
                                        "(tests/fidelity/<lab>.toml) and report disagreements")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_fidelity)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - one readable line instead of a traceback
        from coursetools.nbgrader_ops import NbgraderError

        from coursetools.fidelity import CaseFileError

        if isinstance(exc, (NbgraderError, FileNotFoundError, CaseFileError)):
            print(f"course {args.command}: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
