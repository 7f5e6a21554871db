"""Instructor tooling for the course (the ``course`` command). Students never import this."""
