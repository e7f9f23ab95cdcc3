"""The /tmp fallback of the stack's PostgreSQL directory is refused unless it is really ours."""

from __future__ import annotations

import os

import pytest

from dev.local_aws import postgres


def test_our_own_private_directory_is_accepted(tmp_path):
    directory = tmp_path / "pg"
    directory.mkdir(mode=0o700)
    postgres._check_private(directory, None)


def test_a_symlink_is_refused_even_to_a_good_directory(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "pg"
    link.symlink_to(target)
    with pytest.raises(postgres.PostgresError, match="not a directory"):
        postgres._check_private(link, None)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_of_another_user_is_refused(tmp_path):
    directory = tmp_path / "pg"
    directory.mkdir(mode=0o700)
    os.chown(directory, 54321, 54321)
    with pytest.raises(postgres.PostgresError, match="uid 54321"):
        postgres._check_private(directory, None)


def test_a_directory_others_can_write_is_refused(tmp_path):
    directory = tmp_path / "pg"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(postgres.PostgresError, match="writable by others"):
        postgres._check_private(directory, None)
