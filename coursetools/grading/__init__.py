"""Grading a class: ``course grade``, ``course review`` and the grades export.

One module per job:
- :mod:`coordinator` decides what to grade, runs the worker pool, merges results;
- :mod:`cluster` grades on a Dask cluster instead of the local pool (``--scheduler``);
- :mod:`worker` grades one submission in a private scratch course;
- :mod:`submission` takes a submission in (what is read, repairs, refusals);
- :mod:`policy` is the static code policy that flags submissions for review;
- :mod:`sandbox` is where student code runs (bubblewrap), :mod:`kernel` starts kernels there;
- :mod:`guard` runs inside the kernel; :mod:`executor` and :mod:`scorer` are the trusted side
  of executing and scoring a notebook (nbgrader preprocessors);
- :mod:`merge` writes into the course (autograded copy, gradebook), :mod:`ledger` remembers
  outcomes and checks the gradebook against them; :mod:`review` records instructors'
  decisions; :mod:`export` is the CSV export with statuses.
- :mod:`plain_autograde` makes plain ``nbgrader autograde`` (and Formgrader's button) refuse:
  it would run student code unsandboxed.
"""
from coursetools.grading.cluster import ClusterLost, ClusterRefused, scheduler_address
from coursetools.grading.cluster import connect as connect_cluster
from coursetools.grading.coordinator import (containment, default_workers, find_students, format_results,
                                             grade_lab)
from coursetools.grading.ledger import FAILED, GRADED, LEDGER_DIR, REVIEW, SKIPPED, Result
from coursetools.grading.ledger import read as read_ledger
from coursetools.grading.merge import remove_from_gradebook
from coursetools.grading.submission import SubmissionProblem, scan_outputs
from coursetools.grading.submission import digest as submission_digest
from coursetools.grading.submission import prepare as prepare_submission
from coursetools.grading.worker import Limits, network_isolation_available


__all__ = ["FAILED", "GRADED", "LEDGER_DIR", "REVIEW", "SKIPPED", "ClusterLost", "ClusterRefused", "Limits",
           "Result", "SubmissionProblem", "connect_cluster", "containment", "default_workers", "find_students",
           "format_results", "grade_lab", "network_isolation_available", "prepare_submission", "read_ledger",
           "remove_from_gradebook", "scan_outputs", "scheduler_address", "submission_digest"]
