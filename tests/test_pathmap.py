"""Path mapping between an artist's view of the show and the bridge server's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_server.client.errors import BadParameter, PathNotMapped
from bridge_server.client.pathmap import ENVIRONMENT_VARIABLE, PathMap, PathRule

WINDOWS_TO_LINUX = PathMap([PathRule("P:\\shows", "/mnt/shows")], client_windows=True)
# One server's rules, sent in hello to every artist whatever their OS.
SERVED = PathMap.rules_from_json([["P:\\shows", "/mnt/shows"], ["/Volumes/shows", "/mnt/shows"]])


def test_a_windows_plate_path_reaches_the_linux_server_with_forward_slashes():
    assert WINDOWS_TO_LINUX.to_server("P:\\shows\\abc\\sh010\\plate.####.exr") == "/mnt/shows/abc/sh010/plate.####.exr"


def test_drive_letter_and_folder_case_and_slash_style_do_not_matter_on_the_windows_side():
    assert WINDOWS_TO_LINUX.to_server("p:/SHOWS/abc/plate.0001.exr") == "/mnt/shows/abc/plate.0001.exr"


def test_the_rest_of_the_path_keeps_its_case():
    assert WINDOWS_TO_LINUX.to_server("P:\\shows\\ABC\\Plate.exr") == "/mnt/shows/ABC/Plate.exr"


def test_plates_written_by_the_server_come_back_as_windows_paths():
    assert WINDOWS_TO_LINUX.to_client("/mnt/shows/abc/alpha.1001.exr") == "P:\\shows\\abc\\alpha.1001.exr"


def test_a_mac_and_a_windows_artist_on_one_server_each_get_their_own_paths_back():
    windows = PathMap(client_windows=True).with_served(SERVED)
    mac = PathMap(client_windows=False).with_served(SERVED)
    assert windows.to_server("P:\\shows\\abc\\plate.1001.exr") == "/mnt/shows/abc/plate.1001.exr"
    assert mac.to_server("/Volumes/shows/abc/plate.1001.exr") == "/mnt/shows/abc/plate.1001.exr"
    written = "/mnt/shows/abc/alpha.1001.exr"
    assert windows.to_client(written) == "P:\\shows\\abc\\alpha.1001.exr"
    assert mac.to_client(written) == "/Volumes/shows/abc/alpha.1001.exr"


def test_a_server_path_no_rule_of_this_os_maps_comes_back_as_the_server_wrote_it():
    mac = PathMap(client_windows=False).with_served(PathMap.rules_from_json([["P:\\shows", "/mnt/shows"]]))
    assert mac.to_client("/mnt/shows/abc/alpha.1001.exr") == "/mnt/shows/abc/alpha.1001.exr"


def test_a_server_rule_for_mac_paths_does_not_catch_a_windows_path_that_looks_alike():
    # Folded for case and slashes, \shows\a.exr would match /shows; a served rule only maps
    # paths written in its own client side's style.
    windows = PathMap(client_windows=True).with_served([PathRule("/shows", "/mnt/shows")])
    assert windows.to_server("/shows/a.exr") == "/mnt/shows/a.exr"
    with pytest.raises(PathNotMapped):
        windows.to_server("\\SHOWS\\a.exr")


def test_the_artists_own_rules_come_before_the_servers():
    own = PathMap([PathRule("P:\\shows", "/fast/shows")], client_windows=True)
    both = own.with_served([PathRule("P:\\shows\\abc", "/mnt/abc"), PathRule("P:\\shows", "/fast/shows")])
    assert both.to_server("P:\\shows\\abc\\plate.exr") == "/fast/shows/abc/plate.exr"
    assert both.to_client("/fast/shows/abc/alpha.exr") == "P:\\shows\\abc\\alpha.exr"
    assert both.rules == own.rules and both.served == [PathRule("P:\\shows\\abc", "/mnt/abc")]
    assert both.to_server("P:\\SHOWS\\xyz\\plate.exr") == "/fast/shows/xyz/plate.exr"


def test_a_windows_path_no_rule_maps_is_refused_with_the_variable_to_set():
    for rules in (WINDOWS_TO_LINUX, PathMap(client_windows=True)):
        with pytest.raises(PathNotMapped) as caught:
            rules.to_server("Q:\\library\\plate.0001.exr")
        assert caught.value.code == "no_path_mapping"
        assert "Q:\\library\\plate.0001.exr" in caught.value.message
        assert ENVIRONMENT_VARIABLE in caught.value.message and "serve --path-map" in caught.value.message


def test_a_windows_server_takes_unmapped_windows_paths_as_they_are():
    assert WINDOWS_TO_LINUX.to_server("Q:\\library\\plate.exr", server_windows=True) == "Q:\\library\\plate.exr"


def test_unmapped_posix_paths_pass_through():
    assert WINDOWS_TO_LINUX.to_server("/local/a.exr") == "/local/a.exr"
    assert PathMap().to_server("/Volumes/shows/a.exr") == "/Volumes/shows/a.exr"
    assert WINDOWS_TO_LINUX.to_client("/elsewhere/a.exr") == "/elsewhere/a.exr"


def test_a_prefix_matches_whole_folders_only():
    with pytest.raises(PathNotMapped):
        WINDOWS_TO_LINUX.to_server("P:\\showsreel\\a.exr")
    assert WINDOWS_TO_LINUX.to_client("/mnt/showsreel/a.exr") == "/mnt/showsreel/a.exr"
    mac = PathMap([PathRule("/Volumes/shows", "/mnt/shows")])
    assert mac.to_server("/Volumes/showsreel/a.exr") == "/Volumes/showsreel/a.exr"


def test_linux_and_mac_paths_are_case_sensitive():
    assert WINDOWS_TO_LINUX.to_client("/MNT/shows/a.exr") == "/MNT/shows/a.exr"
    mac = PathMap([PathRule("/Volumes/shows", "/mnt/shows")])
    assert mac.to_server("/volumes/shows/a.exr") == "/volumes/shows/a.exr"


def test_unc_shares_map_like_drive_letters():
    rules = PathMap([PathRule("\\\\nas\\projects", "/mnt/projects")])
    assert rules.to_server("\\\\NAS\\Projects\\x\\y.exr") == "/mnt/projects/x/y.exr"
    assert rules.to_server("//nas/projects/x/y.exr") == "/mnt/projects/x/y.exr"
    assert rules.to_client("/mnt/projects/x/y.exr") == "\\\\nas\\projects\\x\\y.exr"


def test_a_folder_named_like_a_share_on_the_current_drive_is_not_the_share():
    rules = PathMap([PathRule("\\\\nas\\projects", "/mnt/projects")])
    with pytest.raises(PathNotMapped):
        rules.to_server("\\nas\\projects\\x\\y.exr")


def test_the_longest_matching_prefix_wins():
    rules = PathMap([PathRule("/Volumes/show", "/mnt/show"), PathRule("/Volumes/show/cache", "/fast/cache")])
    assert rules.to_server("/Volumes/show/cache/a.exr") == "/fast/cache/a.exr"
    assert rules.to_server("/Volumes/show/plates/a.exr") == "/mnt/show/plates/a.exr"
    assert rules.to_client("/fast/cache/a.exr") == "/Volumes/show/cache/a.exr"


def test_longest_means_most_folders_not_most_characters():
    # Both prefixes are 10 characters; the one with a doubled separator holds fewer folders.
    rules = PathMap([PathRule("P:\\shows\\\\", "/mnt/shows"), PathRule("P:\\shows\\a", "/fast/a")])
    assert rules.to_server("P:\\shows\\a\\plate.exr") == "/fast/a/plate.exr"
    assert rules.to_server("P:\\shows\\b\\plate.exr") == "/mnt/shows/b/plate.exr"


def test_a_rule_written_with_doubled_backslashes_as_an_escaped_shell_line_leaves_it_still_maps(monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "P:\\\\shows=/mnt/shows")
    rules = PathMap.from_environment()
    assert rules.to_server("P:\\shows\\abc\\plate.exr") == "/mnt/shows/abc/plate.exr"
    assert PathMap([PathRule("/mnt/shows", "/srv")]).to_server("/mnt//shows/a.exr") == "/srv/a.exr"


def test_a_rule_written_with_forward_slashes_gives_forward_slash_paths_back():
    # As Nuke writes Windows paths: a backslash would come back into a file knob.
    rules = PathMap([PathRule("P:/shows", "/mnt/shows")], client_windows=True)
    assert rules.to_server("P:\\Shows\\abc\\plate.exr") == "/mnt/shows/abc/plate.exr"
    assert rules.to_client("/mnt/shows/abc/alpha.1001.exr") == "P:/shows/abc/alpha.1001.exr"


def test_a_trailing_separator_in_a_rule_changes_nothing():
    rules = PathMap([PathRule("P:\\shows\\", "/mnt/shows/")])
    assert rules.to_server("P:\\shows\\a.exr") == "/mnt/shows/a.exr"
    assert rules.to_server("P:\\shows") == "/mnt/shows/"


def test_rules_are_parsed_from_text_and_the_environment(monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "P:\\shows=/mnt/shows; Q:\\lib = /mnt/lib;")
    rules = PathMap.from_environment()
    assert rules.rules == [PathRule("P:\\shows", "/mnt/shows"), PathRule("Q:\\lib", "/mnt/lib")]
    assert PathMap.rules_from_json(rules.to_json()) == rules.rules
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    assert not PathMap.from_environment()


@pytest.mark.parametrize("text, named", [("P:\\shows", "shows'"), ("=/mnt/shows", "'=/mnt/shows'"),
                                         ("P:\\shows= ", "shows='"), ("P:\\shows=/mnt/shows;Q:\\lib", "lib'")])
def test_a_rule_without_both_sides_is_refused_with_the_rule_named(text, named):
    with pytest.raises(BadParameter, match="CLIENT_PREFIX=SERVER_PREFIX") as caught:
        PathMap.parse(text)
    assert caught.value.code == "bad_parameter" and named in caught.value.message


def test_a_rule_with_an_empty_side_cannot_be_made():
    with pytest.raises(BadParameter):
        PathRule("", "/mnt/shows")
    with pytest.raises(BadParameter):
        PathRule("P:\\shows", "")


def test_bad_rules_from_a_server_are_skipped():
    sent = [["a", "b"], ["only one"], "junk", [1, 2], ["", "/x"], ["c", "d", "e"], None]
    assert PathMap.rules_from_json(sent) == [PathRule("a", "b")]
    assert PathMap.rules_from_json({"P:\\shows": "/mnt/shows"}) == [] == PathMap.rules_from_json(None)


FOLDER = st.text(st.characters(exclude_characters="/\\\0", exclude_categories=("Cs",)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(FOLDER, min_size=1, max_size=5))
def test_a_plate_path_goes_to_the_server_and_comes_back_as_it_was(folders):
    windows_path = "P:\\shows\\" + "\\".join(folders)
    server_path = WINDOWS_TO_LINUX.to_server(windows_path)
    assert server_path == "/mnt/shows/" + "/".join(folders)
    assert WINDOWS_TO_LINUX.to_client(server_path) == windows_path
