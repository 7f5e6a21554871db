"""The ``course`` command: instructor tooling around nbgrader."""
from __future__ import annotations

import argparse
import shlex
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
    import tempfile

    from coursetools.build import scratch_course
    from coursetools.demo import format_table, run_demo

    if args.dir:
        course = Path(args.dir).resolve()
        course.mkdir(parents=True, exist_ok=True)
    else:  # never the course's own gradebook: a scratch course set up from its source/
        origin = layout.course_root()
        course = scratch_course(origin, Path(tempfile.mkdtemp(prefix="course-demo-")))
        print(f"demo course: {course} (a scratch copy of {origin}/source; the course's gradebook is not "
              f"touched)", flush=True)
    result = run_demo(course, args.labs, log=lambda line: print(line, flush=True))
    print()
    print(format_table(result.results, result.explanations, result.skipped))
    if result.feedback:
        print()
        print("feedback:")
        for path in result.feedback:
            print(f"  {path}")
        print(f"grades CSV: {result.grades_csv}")
    print(f"remove the demo students: course remove-student --demo --dir {course}" if args.dir
          else f"demo course: {course} (delete the folder when done)")
    return 0


def cmd_remove_student(args) -> int:
    from coursetools import nbgrader_ops, students
    from coursetools.demo import DEMO_STUDENTS

    course = layout.course_root(args.dir)
    labs = layout.select_labs(course, args.lab) if args.lab else None
    who = list(args.students) + (list(DEMO_STUDENTS) if args.demo else [])
    try:
        if not who:
            raise ValueError("name students or give --demo")
        for student in who:
            students.check_id(student)
    except ValueError as problem:
        print(f"course remove-student: {problem}", file=sys.stderr)
        return 2
    for student in who:
        removed = students.remove_student(course, student, labs)
        print(f"{student}: " + (", ".join(removed) if removed else "nothing found"))
    if (course / "grades.csv").is_file():
        try:
            nbgrader_ops.run(course, "export")
            print(f"grades CSV rewritten: {course / 'grades.csv'}")
        except nbgrader_ops.NbgraderError as problem:
            print(f"grades.csv not rewritten ({str(problem).splitlines()[-1]}); run `course export`")
    return 0


def cmd_student_kit(args) -> int:
    from coursetools.student_kit import write_kit

    course = layout.course_root(args.dir)
    labs = layout.select_labs(course, args.labs)
    out = Path(args.out).resolve()
    write_kit(course, out, labs, exchange=args.exchange)
    print(f"student kit of {len(labs)} lab(s) in {out}: give students this folder (e.g. zipped); "
          f"they run `pip install ./{out.name}` and follow its README.md")
    return 0


def rerun_command(args, lab: str, scheduler: str, students: list[str]) -> str:
    """The ``course grade`` command line that grades ``students`` as this run would have: the
    same course, scheduler, limits and options (defaults left out)."""
    words = ["course", "grade", lab]
    if args.dir:
        words += ["--dir", shlex.quote(str(Path(args.dir).resolve()))]
    words += ["--scheduler", scheduler, "--students", shlex.quote(",".join(students))]
    for flag, value, default in (("--time-limit", args.time_limit, 1800.0), ("--memory-gb", args.memory_gb, 6.0),
                                 ("--threads", args.threads, 1), ("--disk-mb", args.disk_mb, 512)):
        if value != default:
            words += [flag, f"{value:g}"]
    words += [flag for flag, on in (("--force", args.force), ("--allow-network", args.allow_network),
                                    ("--no-sandbox", args.no_sandbox), ("--shared-fs", args.shared_fs)) if on]
    return " ".join(words)


def cmd_grade(args) -> int:
    from coursetools import grading, nbgrader_ops
    from coursetools.grading.export import GradebookMismatch

    course = layout.course_root(args.dir)
    lab = layout.select_labs(course, [args.lab])[0]
    limits = grading.Limits(time_limit=args.time_limit, memory_gb=args.memory_gb, threads=args.threads,
                            isolate_network=not args.allow_network, disk_mb=args.disk_mb,
                            sandbox=not args.no_sandbox)
    workers = args.workers or grading.default_workers(limits)
    students = [s for s in args.students.split(",") if s] if args.students else None
    cluster = None
    try:
        if grading.scheduler_address(args.scheduler):
            cluster = grading.connect_cluster(grading.scheduler_address(args.scheduler), limits, args.shared_fs)
            where, how = cluster.describe(), cluster.how
        else:
            where, (_, how) = f"with {workers} worker(s)", grading.containment(limits)
        print(f"grading {lab} {where}, {limits.threads} thread(s) per kernel, "
              f"{limits.time_limit:g} s and {limits.memory_gb:g} GB per submission; kernels: {how}", flush=True)
        start = time.perf_counter()
        results = grading.grade_lab(course, lab, students, workers, limits, force=args.force, cluster=cluster)
        elapsed = time.perf_counter() - start
    except (GradebookMismatch, grading.ClusterRefused) as problem:
        print(f"refused: {problem}")
        return 2
    except grading.ClusterLost as lost:
        print(f"stopped: {lost}\nrerun: {rerun_command(args, lab, cluster.address, lost.students)}")
        return 3
    finally:
        if cluster is not None:
            cluster.close()
    print()
    print(grading.format_results(results))
    nbgrader_ops.run(course, "export")
    failed = sum(r.status == grading.FAILED for r in results)
    review = sum(r.status == grading.REVIEW for r in results)
    print(f"\n{len(results)} submission(s), {failed} failed, {review} need review"
          f"{' (course review ' + lab + ')' if review else ''}, {elapsed:.0f} s"
          f"{'; ' + cluster.throughput(elapsed) if cluster else ''}; grades CSV: {course / 'grades.csv'}")
    return 0


def cmd_review(args) -> int:
    from coursetools.grading import review

    course = layout.course_root(args.dir)
    lab = layout.select_labs(course, [args.lab])[0]
    for student, decision in [(s, "accepted") for s in args.accept] + [(s, "zeroed") for s in args.zero]:
        result = review.decide(course, lab, student, decision)
        print(f"{student}: {decision} ({result.score:g}/{result.max_score:g})")
    print(review.format_flagged(review.flagged(course, lab)))
    return 0


def cmd_export(args) -> int:
    from coursetools import nbgrader_ops
    from coursetools.grading.export import GradebookMismatch, check_gradebook

    course = layout.course_root(args.dir)
    try:
        check_gradebook(course, layout.labs(course))
    except GradebookMismatch as problem:
        print(f"refused: {problem}")
        return 2
    nbgrader_ops.run(course, "export")
    print(f"grades CSV: {course / 'grades.csv'}")
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
    report = grade_bench.run(lab, args.n, counts, args.threads, sandbox_overhead=args.sandbox_overhead,
                             scheduler=args.scheduler)
    print()
    print(f"{report['submissions']} submissions of {lab}, {report['threads_per_kernel']} thread(s) per kernel")
    for run in report["runs"]:
        extra = (f", overhead {run['overhead_per_submission']:.2f} s/submission over plain execution"
                 if "overhead_per_submission" in run else "")
        print(f"  {run['workers']} worker(s): {run['seconds']:.0f} s, {run['per_minute']} submissions/min, "
              f"speed-up x{run['speedup']}{extra}")
    if "sandbox_overhead_per_submission" in report:
        print(f"  sandbox overhead: {report['sandbox_overhead_per_submission']:.2f} s/submission "
              f"(1 worker without it: {report['unsandboxed_seconds']:.0f} s)")
    for run in report.get("cluster_runs", []):
        print(f"  Dask, {run['workers']} worker(s): {run['seconds']:.0f} s, {run['per_minute']} submissions/min, "
              f"speed-up x{run['speedup']}, overhead {run['overhead_per_submission']:+.2f} s/submission over "
              f"local grading (wall time {run['wall_difference_per_submission']:+.2f}); {run['per_worker']}")
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
        outcomes, _ = fidelity.run_lab(lab, cases, course, workers=args.workers, visible_run=args.visible_run)
        summaries.append(fidelity.summary(lab, outcomes))
    print()
    print(fidelity.format_report(summaries))
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2) + "\n")
    return 1 if any(s["disagreements"] for s in summaries) else 0


def _iso_date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def cmd_report(args) -> int:
    from coursetools import report

    course = layout.course_root(args.dir)
    labs = layout.select_labs(course, args.labs)
    if args.bench:
        from coursetools.report import bench

        result = bench.run(labs[0], args.bench)
        print(f"{result['submissions']} synthetic graded submissions of {result['lab']} "
              f"({result['notebooks_mb']} MB of autograded notebooks): `course report` took "
              f"{', '.join(f'{t:.1f}' for t in result['report_seconds'])} s wall, "
              f"{', '.join(f'{t:.1f}' for t in result['report_cpu_seconds'])} s CPU, imports included "
              f"(reading {result['parts']['read']:.1f} s + writing {result['parts']['write']:.1f} s once imported)")
        return 0
    students = [s for s in args.students.split(",") if s] if args.students else None
    out = Path(args.out).resolve() if args.out else course / "reports"
    reports = report.write_reports(course, labs, out, students, args.since, skip_empty=not args.labs)
    for r in reports:
        s = r.summary
        print(f"{r.lab}: {s['submitted']}/{s['roster']} submitted, {s['graded']} graded, {s['failed']} failed, "
              f"{s['needs_review']} need review, {s['late']} late  ->  {r.files['html']}")
        if s["unknown_students"]:
            print(f"    not found in {r.lab}: {', '.join(s['unknown_students'])}")
    if len(labs) > 1:
        print(f"index: {out / 'index.html'}")
    if not reports:
        print("no submissions yet")
    return 0


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
                                    "(in a scratch course) and print the score table")
    _labs_arg(p)
    p.add_argument("--dir", help="run in this course directory (created and set up from this checkout's "
                                 "source/ if needed; default: a new scratch course, never the course's own)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("remove-student", help="remove students (or only some labs of theirs) from a course: "
                                              "gradebook, submitted/, autograded/, feedback/, grading ledger")
    p.add_argument("students", nargs="*", metavar="STUDENT", help="student ids")
    p.add_argument("--demo", action="store_true", help="also the demo students of `course demo`")
    p.add_argument("--lab", action="append", metavar="LAB",
                   help="only this lab's submission (repeatable; default: the student entirely)")
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.set_defaults(func=cmd_remove_student)

    p = sub.add_parser("student-kit", help="write what students get without a JupyterHub: release notebooks, "
                                           "helpers, student dependencies and nbgrader config, a README")
    p.add_argument("out", metavar="DIR", help="a new or empty folder for the kit")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--exchange", help="exchange folder students default to (default: the course's, "
                                      "$COURSE_EXCHANGE or nbgrader_config.py's EXCHANGE_DEFAULT)")
    p.set_defaults(func=cmd_student_kit)

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
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade without the sandbox (trusted submissions only; said in the header and ledger)")
    p.add_argument("--disk-mb", type=int, default=512,
                   help="private disk (tmpfs) for a kernel's working directory and HOME (default 512)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on the Dask cluster of this scheduler, e.g. tcp://host:8786, instead of "
                        "this machine (default: $COURSE_DASK_SCHEDULER; --workers does not apply)")
    p.add_argument("--shared-fs", action="store_true",
                   help="with --scheduler: the workers see this course directory at the same path, so "
                        "course files and submissions are read there instead of sent with each task")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("review", help="list submissions flagged by the code policy or the kernel guard; "
                                      "accept or zero them")
    p.add_argument("lab", help="lab id or prefix")
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--accept", action="append", default=[], metavar="STUDENT",
                   help="keep the autograder's score (repeatable)")
    p.add_argument("--zero", action="append", default=[], metavar="STUDENT",
                   help="set the submission's score to 0 (repeatable)")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("export", help="grades.csv with each submission's status, after checking the "
                                      "gradebook against the grading ledger")
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.set_defaults(func=cmd_export)

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
    p.add_argument("--sandbox-overhead", action="store_true",
                   help="also grade the class once without the sandbox and report its cost per submission")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="also grade the class on this Dask cluster's first 1, 2, ... workers (as many as "
                        "--workers names) and report its overhead per submission over local grading")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_bench_grading)

    p = sub.add_parser("fidelity", help="autograde each lab's mutants and variants "
                                        "(tests/fidelity/<lab>.toml) and report disagreements")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--workers", type=int, default=2, help="cases graded in parallel (default 2)")
    p.add_argument("--no-visible-run", dest="visible_run", action="store_false",
                   help="do not grade the mutants a second time without hidden tests; read what the "
                        "visible checks caught from where each failing cell stopped (free, what CI does)")
    p.set_defaults(func=cmd_fidelity)

    p = sub.add_parser("report", help="class report of graded labs: scores, completion, lateness, "
                                      "per-exercise outcomes and failure reasons, item analysis (HTML, CSV, JSON)")
    _labs_arg(p)
    p.add_argument("--dir", help="course directory (default: the one containing the cwd)")
    p.add_argument("--out", help="write the report here (default: reports/ in the course directory)")
    p.add_argument("--students", help="comma-separated student ids (default: everyone)")
    p.add_argument("--since", type=_iso_date, metavar="YYYY-MM-DD",
                   help="only submissions made on or after this date (UTC)")
    p.add_argument("--bench", type=int, metavar="N",
                   help="instead: time the report on a synthetic graded class of N submissions of the lab")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - one readable line instead of a traceback
        from coursetools.nbgrader_ops import NbgraderError

        from coursetools.fidelity import CaseFileError

        if isinstance(exc, (NbgraderError, FileNotFoundError, FileExistsError, CaseFileError)):
            print(f"course {args.command}: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
