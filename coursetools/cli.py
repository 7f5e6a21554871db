"""The ``course`` command: instructor tooling around nbgrader."""
from __future__ import annotations

import argparse
import sys
import time
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
    print(format_table(result.results))
    print()
    print("feedback:")
    for path in result.feedback:
        print(f"  {path}")
    print(f"grades CSV: {result.grades_csv}")
    return 0


def cmd_grade(args) -> int:
    from coursetools import grading, nbgrader_ops

    course = layout.course_root(args.dir)
    lab = layout.select_labs(course, [args.lab])[0]
    limits = grading.Limits(time_limit=args.time_limit, memory_gb=args.memory_gb, threads=args.threads,
                            isolate_network=not args.allow_network)
    workers = args.workers or grading.default_workers(limits)
    students = [s for s in args.students.split(",") if s] if args.students else None
    print(f"grading {lab} with {workers} worker(s), {limits.threads} thread(s) per kernel, "
          f"{limits.time_limit:g} s and {limits.memory_gb:g} GB per submission, network "
          f"{'isolated' if limits.isolate_network and grading.network_isolation_available() else 'not isolated'}",
          flush=True)
    start = time.perf_counter()
    results = grading.grade_lab(course, lab, students, workers, limits, force=args.force)
    elapsed = time.perf_counter() - start
    print()
    print(grading.format_results(results))
    nbgrader_ops.run(course, "export")
    failed = sum(r.status == grading.FAILED for r in results)
    print(f"\n{len(results)} submission(s), {failed} failed, {elapsed:.0f} s; grades CSV: {course / 'grades.csv'}")
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


def cmd_bench_grading(args) -> int:
    import json

    from coursetools import grade_bench

    course = layout.course_root(args.dir)
    lab = layout.select_labs(course, [args.lab])[0]
    counts = tuple(int(w) for w in args.workers.split(","))
    report = grade_bench.run(lab, args.n, counts, args.threads)
    print()
    print(f"{report['submissions']} submissions of {lab}, {report['threads_per_kernel']} thread(s) per kernel")
    for run in report["runs"]:
        extra = (f", overhead {run['overhead_per_submission']:.2f} s/submission over plain execution"
                 if "overhead_per_submission" in run else "")
        print(f"  {run['workers']} worker(s): {run['seconds']:.0f} s, {run['per_minute']} submissions/min, "
              f"speed-up x{run['speedup']}{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def cmd_fidelity(args) -> int:
    import json

    from coursetools import fidelity

    course = layout.course_root(args.dir)
    summaries = []
    for lab in layout.select_labs(course, args.labs):
        cases = fidelity.load_cases(lab)
        print(f"grading {len(cases)} cases of {lab} ...", flush=True)
        outcomes, _ = fidelity.run_lab(lab, cases, course, workers=args.workers)
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

    p = sub.add_parser("grade", help="autograde every submission of a lab in parallel, robustly "
                                     "(limits, bad-input statuses, resumable)")
    p.add_argument("lab", help="lab id or prefix")
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--workers", type=int, default=0,
                   help="parallel submissions (default: one per CPU core, bounded by memory)")
    p.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per kernel (default 1)")
    p.add_argument("--students", help="comma-separated student ids (default: everyone who submitted)")
    p.add_argument("--force", action="store_true", help="regrade submissions graded before")
    p.add_argument("--time-limit", type=float, default=1800.0,
                   help="seconds for a whole notebook before it is stopped (default 1800)")
    p.add_argument("--memory-gb", type=float, default=6.0, help="memory per submission (default 6)")
    p.add_argument("--allow-network", action="store_true", help="do not isolate kernels from the network")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("bench", help="run each lab's reference top-to-bottom: wall time vs budget, "
                                     "key metric vs hidden threshold")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-grading", help="measure `course grade` on a generated class: "
                                             "submissions/min per worker count, overhead")
    p.add_argument("--lab", default="lab01", help="lab to grade (default lab01)")
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("-n", type=int, default=60, help="submissions (default 60)")
    p.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    p.add_argument("--threads", type=int, default=1, help="threads per kernel (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_bench_grading)

    p = sub.add_parser("fidelity", help="autograde each lab's mutants and variants "
                                        "(tests/fidelity/<lab>.toml) and report disagreements")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--workers", type=int, default=2, help="cases graded in parallel (default 2)")
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
