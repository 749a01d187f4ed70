"""Path mapping between an artist's view of the show and the bridge server's."""

from __future__ import annotations

import pytest

from bridge_server.client.pathmap import ENVIRONMENT_VARIABLE, PathMap, PathRule

WINDOWS_TO_LINUX = PathMap([PathRule("P:\\shows", "/mnt/shows")])


def test_a_windows_plate_path_reaches_the_linux_server_with_forward_slashes():
    assert WINDOWS_TO_LINUX.to_server("P:\\shows\\abc\\sh010\\plate.####.exr") == "/mnt/shows/abc/sh010/plate.####.exr"


def test_drive_letter_and_folder_case_and_slash_style_do_not_matter_on_the_windows_side():
    assert WINDOWS_TO_LINUX.to_server("p:/SHOWS/abc/plate.0001.exr") == "/mnt/shows/abc/plate.0001.exr"


def test_the_rest_of_the_path_keeps_its_case():
    assert WINDOWS_TO_LINUX.to_server("P:\\shows\\ABC\\Plate.exr") == "/mnt/shows/ABC/Plate.exr"


def test_plates_written_by_the_server_come_back_as_windows_paths():
    assert WINDOWS_TO_LINUX.to_client("/mnt/shows/abc/alpha.1001.exr") == "P:\\shows\\abc\\alpha.1001.exr"


def test_a_prefix_matches_whole_folders_only():
    assert WINDOWS_TO_LINUX.to_server("P:\\showsreel\\a.exr") == "P:\\showsreel\\a.exr"
    assert WINDOWS_TO_LINUX.to_client("/mnt/showsreel/a.exr") == "/mnt/showsreel/a.exr"


def test_linux_server_paths_are_case_sensitive():
    assert WINDOWS_TO_LINUX.to_client("/MNT/shows/a.exr") == "/MNT/shows/a.exr"


def test_unc_shares_map_like_drive_letters():
    rules = PathMap([PathRule("\\\\nas\\projects", "/mnt/projects")])
    assert rules.to_server("\\\\NAS\\projects\\x\\y.exr") == "/mnt/projects/x/y.exr"
    assert rules.to_client("/mnt/projects/x/y.exr") == "\\\\nas\\projects\\x\\y.exr"


def test_the_longest_matching_prefix_wins():
    rules = PathMap([PathRule("/Volumes/show", "/mnt/show"), PathRule("/Volumes/show/cache", "/fast/cache")])
    assert rules.to_server("/Volumes/show/cache/a.exr") == "/fast/cache/a.exr"
    assert rules.to_server("/Volumes/show/plates/a.exr") == "/mnt/show/plates/a.exr"


def test_a_trailing_separator_in_a_rule_changes_nothing():
    rules = PathMap([PathRule("P:\\shows\\", "/mnt/shows/")])
    assert rules.to_server("P:\\shows\\a.exr") == "/mnt/shows/a.exr"
    assert rules.to_server("P:\\shows") == "/mnt/shows/"


def test_unmapped_paths_pass_through():
    assert WINDOWS_TO_LINUX.to_server("/local/a.exr") == "/local/a.exr"
    assert PathMap().to_server("P:\\shows\\a.exr") == "P:\\shows\\a.exr"


def test_rules_are_parsed_from_text_and_the_environment(monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "P:\\shows=/mnt/shows; Q:\\lib = /mnt/lib")
    rules = PathMap.from_environment()
    assert rules.rules == [PathRule("P:\\shows", "/mnt/shows"), PathRule("Q:\\lib", "/mnt/lib")]
    assert PathMap.from_json(rules.to_json()).rules == rules.rules


@pytest.mark.parametrize("text", ["P:\\shows", "=/mnt/shows", "P:\\shows= "])
def test_a_rule_without_both_sides_is_refused_with_the_rule_named(text):
    with pytest.raises(ValueError, match="CLIENT_PREFIX=SERVER_PREFIX"):
        PathMap.parse(text)


def test_bad_rules_from_a_server_are_skipped():
    assert PathMap.from_json([["a", "b"], ["only one"], "junk", [1, 2]]).rules == [PathRule("a", "b")]
