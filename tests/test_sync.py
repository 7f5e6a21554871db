"""release/ and solutions/ are what `course build` generates from source/ today."""
from coursetools.build import out_of_sync
from conftest import LABS, ROOT


def test_generated_folders_in_sync_with_source():
    problems = out_of_sync(ROOT, LABS)
    assert not problems, "run `course build` and commit:\n" + "\n".join(problems)
