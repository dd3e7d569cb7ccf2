"""Choosing the next hashtag: votes from a reply thread, merged trends, the blocklist and
cooldown, and the evidence every choice leaves under runs/choices/."""

from __future__ import annotations

import json

import pytest

from socialgan import cli, settings
from socialgan.audience import evidence, hashtags
from socialgan.audience.choose import (
    INVITATION,
    caption_line,
    choose_hashtag,
    invitation_line,
    load_choice,
)
from socialgan.audience.hashtags import Blocklist, normalize_candidate, try_normalize
from socialgan.audience.trending import merge_trending
from socialgan.audience.types import Reply, TrendingTag, replies_from_json
from socialgan.audience.votes import BlockedAccounts, tally_votes, vote_of
from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.publishing.post import PUBLISHED, Post, save_post
from socialgan.storage import keys

T0 = 1_800_000_000.0  # when our round's post went out
HOUR = 3600.0


@pytest.fixture(autouse=True)
def _default_audience_settings(monkeypatch):
    for name in ("AUDIENCE_BLOCKLIST_FILE", "AUDIENCE_COOLDOWN", "AUDIENCE_BLOCKED_ACCOUNTS",
                 "AUDIENCE_VOTE_WINDOW_HOURS", "AUDIENCE_MIN_VOTES", "AUDIENCE_VOTER_PRIVACY",
                 "AUDIENCE_HASH_SALT", "AUDIENCE_INVITE"):
        monkeypatch.delenv(name, raising=False)


def our_post(store, post_id="p1", platform_id="109", created=T0, target="mastodon"):
    post = Post(post_id=post_id, target=target, state=PUBLISHED, caption="nine images",
                grid_key="grids/m/g.png", image_key=f"posts/{post_id}/grid.png",
                created_unix=created, platform_ids=[platform_id])
    save_post(store, post)
    return post


def reply(n, author, text, at_h, *, post="109", platform="mastodon", own=False, handle=""):
    return Reply(platform=platform, post_id=post, reply_id=f"r{n}", author_id=f"id-{author}",
                 author_handle=handle or f"{author}@example.social", text=text,
                 created_unix=T0 + at_h * HOUR, is_own=own)


def thread():
    """A round's replies: 3 accounts for cats (one of them repeating itself), 2 for dogs,
    and replies that must not count."""
    return [
        reply(1, "ann", "#Cats please", 1),
        reply(2, "ann", "still #cats!", 2),  # repeated: one vote
        reply(3, "bob", "<p>I vote <a href='/tags/cats' class='hashtag'>#<span>CATS</span>"
                        "</a></p>", 3),  # Mastodon's HTML
        reply(4, "cid", "#dogs", 1.5),
        reply(5, "cid", "changed my mind: #Cåts", 4),  # the latest counts: cats
        reply(6, "dee", "#dogs", 5),
        reply(7, "eve", "#DOGS", 6),
        reply(8, "us", "#dogs #dogs #dogs", 1, own=True),  # our own account
        reply(9, "spam", "#dogs", 2, handle="@Spammer@bad.example"),  # blocked
        reply(10, "late", "#dogs", 30),  # after the 24 h window
        reply(11, "early", "#dogs", -1),  # before the post
        reply(12, "old", "#dogs", 2, post="42"),  # a reply to a post of another round
        reply(13, "fay", "no hashtag here, 2026 #2026", 2),
    ]


def test_votes_from_a_thread_count_one_per_account_and_skip_own_blocked_and_late(
        store, monkeypatch):
    monkeypatch.setenv("AUDIENCE_BLOCKED_ACCOUNTS", "mastodon:spammer@bad.example, id-zed")
    our_post(store)
    choice = choose_hashtag(store, "vote", replies=thread(), now=T0 + 25 * HOUR)
    assert (choice.winner, choice.method, choice.votes) == ("cats", "vote", 3)
    assert choice.reason == "chosen by 3 votes"
    assert choice.runner_ups == ()  # dogs's 2 votes are under AUDIENCE_MIN_VOTES
    record = evidence.read_evidence(store, choice.choice_id)
    tally = {c["hashtag"]: c["votes"] for c in record["votes"]["candidates"]}
    assert tally == {"cats": 3, "dogs": 2}
    assert record["votes"]["counted_voters"] == 5
    assert record["votes"]["ignored_replies"] == {
        "blocked_account": 1, "earlier_vote_replaced": 2, "no_valid_hashtag": 1,
        "not_this_round": 1, "outside_window": 2, "own_account": 1}
    assert record["why"] == "#cats had the most votes (3; at least 3 needed)"


def test_too_few_votes_is_no_winner_and_vote_else_trending_falls_back(store, monkeypatch):
    monkeypatch.setenv("AUDIENCE_MIN_VOTES", "4")
    our_post(store)
    with pytest.raises(FailedPrecondition, match="no hashtag had 4 votes") as failure:
        choose_hashtag(store, "vote", replies=thread(), now=T0 + 25 * HOUR)
    (failed_id,) = evidence.choice_ids(store)
    assert keys.choice_record_key(failed_id) in str(failure.value)
    assert evidence.read_evidence(store, failed_id)["winner"] == ""

    trends = [TrendingTag("Sunset", "mastodon:mastodon.social", uses=800, accounts=200, rank=1)]
    choice = choose_hashtag(store, "vote-else-trending", replies=thread(), trending=trends,
                            now=T0 + 25 * HOUR)
    assert (choice.winner, choice.method) == ("sunset", "trending")
    assert choice.reason.startswith("top trending on mastodon.social (no hashtag had 4 votes")
    assert caption_line(choice) == "Chosen from what is trending."


def test_no_votes_and_no_usable_trend_fails_with_the_evidence_recorded(store):
    with pytest.raises(FailedPrecondition, match="no votes were counted, 3 needed, and no "
                       "trending hashtag was left"):
        choose_hashtag(store, "vote-else-trending", replies=thread(),
                       trending=[TrendingTag("#porn", "x", rank=1)], now=T0)
    (choice_id,) = evidence.choice_ids(store)
    record = evidence.read_evidence(store, choice_id)
    assert record["winner"] == "" and record["trending"]["dropped_listings"] == {
        "blocklisted": 1}
    assert evidence.recent_winners(store, 5) == []  # a failed choice cools nothing down


def test_bad_audience_settings_are_clear_errors(store, monkeypatch):
    monkeypatch.setenv("AUDIENCE_VOTER_PRIVACY", "nicknames")
    with pytest.raises(settings.ConfigError, match="AUDIENCE_VOTER_PRIVACY"):
        choose_hashtag(store, "manual", manual="ocean")
    monkeypatch.delenv("AUDIENCE_VOTER_PRIVACY")
    monkeypatch.setenv("AUDIENCE_MIN_VOTES", "0")
    with pytest.raises(settings.ConfigError, match="AUDIENCE_MIN_VOTES"):
        choose_hashtag(store, "manual", manual="ocean")
    monkeypatch.delenv("AUDIENCE_MIN_VOTES")
    monkeypatch.setenv("AUDIENCE_BLOCKLIST_FILE", "/nonexistent/blocklist.txt")
    with pytest.raises(FailedPrecondition, match="AUDIENCE_BLOCKLIST_FILE"):
        choose_hashtag(store, "manual", manual="ocean")


def test_a_tie_goes_to_the_earlier_first_vote_then_to_the_alphabetically_first():
    windows = {"109": (T0, T0 + 24 * HOUR)}
    earlier = tally_votes([reply(1, "a", "#zebra", 1), reply(2, "b", "#apple", 2)], windows,
                          now=T0 + HOUR * 25, excluded=lambda t: False,
                          blocked=BlockedAccounts.parse(""), needed=1)
    assert [t.tag for t in earlier.ranked] == ["zebra", "apple"]
    same_time = tally_votes([reply(1, "a", "#zebra", 1), reply(2, "b", "#apple", 1)], windows,
                            now=T0 + HOUR * 25, excluded=lambda t: False,
                            blocked=BlockedAccounts.parse(""), needed=1)
    assert same_time.winner.tag == "apple"
    assert same_time.winner.votes == 1


def test_a_vote_is_the_first_valid_hashtag_that_is_not_blocked_or_cooling_down():
    blocked = Blocklist.parse("*porn*\nsunset")
    assert vote_of("#pornstar #sun_set #cats", blocked.blocks) == "sun_set"
    assert vote_of("#sunset #cats", blocked.blocks) == "cats"
    assert vote_of("url example.com/#top and a#b and #123", blocked.blocks) is None
    assert vote_of("#ｃａｆé", blocked.blocks) == "cafe"  # full-width, accented


def test_trending_lists_merge_across_case_accents_and_hash_variants():
    listings = [
        TrendingTag("#Café", "mastodon:mastodon.social", uses=5000, accounts=900, rank=1),
        TrendingTag("NightSky", "mastodon:mastodon.social", uses=40, accounts=3, rank=2),
        TrendingTag("cafe", "bluesky", rank=3),
        TrendingTag("CAFÉ", "bluesky", rank=7),  # the same tag twice: the best rank stays
        TrendingTag("nightsky", "bluesky", rank=1),
        TrendingTag("#not a tag", "x", rank=1),
        TrendingTag("Dogs", "x"),  # no rank: its position in x's list (2)
    ]
    merged = merge_trending(listings, blocked=lambda t: False, cooling=lambda t: False)
    assert [t.tag for t in merged.ranked] == ["cafe", "nightsky", "dogs"]
    cafe = merged.ranked[0]
    assert [(s.source, s.rank) for s in cafe.sources] == [
        ("mastodon:mastodon.social", 1), ("bluesky", 3)]
    assert merged.ranked[2].sources[0].rank == 2
    assert merged.dropped == {"invalid": 1}


def test_plentiful_images_break_even_ranks():
    listings = [TrendingTag("rare", "bluesky", rank=1, uses=2, accounts=1),
                TrendingTag("plenty", "mastodon:a.example", rank=1, uses=90000, accounts=9000)]
    merged = merge_trending(listings, blocked=lambda t: False, cooling=lambda t: False)
    assert [t.tag for t in merged.ranked] == ["plenty", "rare"]


def test_blocklist_file_and_cooldown_are_honoured(store, monkeypatch, tmp_path):
    extra = tmp_path / "blocked.txt"
    extra.write_text("# ours\nSunset\n*spam*\n")
    monkeypatch.setenv("AUDIENCE_BLOCKLIST_FILE", str(extra))
    monkeypatch.setenv("AUDIENCE_COOLDOWN", "2")
    trends = [TrendingTag(n, "bluesky", rank=i + 1) for i, n in enumerate(
        ["sunset", "SpamBots", "porno", "#FollowForFollow", "Peacock", "ocean", "forest",
         "desert"])]
    picks = [choose_hashtag(store, "trending", trending=trends, now=T0 + i).winner
             for i in range(4)]
    # peacock is fine ('cock' blocks the whole tag only); each winner then cools down
    # for the next 2 choices.
    assert picks == ["peacock", "ocean", "forest", "peacock"]
    record = evidence.read_evidence(store, evidence.choice_ids(store)[-1])
    assert record["cooldown"] == ["forest", "ocean"]
    assert record["trending"]["dropped_listings"] == {"blocklisted": 4, "cooldown": 2}
    assert "porno" not in json.dumps(record)  # blocked words are counted, not repeated
    assert not Blocklist.parse("# ours\n").blocks("ours")  # a comment, not an entry
    package = hashtags.blocklist()
    assert [package.blocks(t) for t in ("grapes", "peacock", "scunthorpe", "pornstar")] == [
        False, False, False, True]
    with pytest.raises(InvalidArgument, match="hashtag: '#SUNSET' is on the hashtag blocklist"):
        choose_hashtag(store, "manual", manual="#SUNSET")


def test_invalid_hashtags_are_refused():
    assert normalize_candidate("  #Ｎａïｖｅ_Art ") == "naive_art"
    assert normalize_candidate("#ガーデン") == "ガーデン"  # marks of other scripts are kept
    for bad in ("", "#", "2026", "sun set", "sun-set", "🌅", "a" * 51, "#" + "x" * 200):
        assert try_normalize(bad) is None, bad
        with pytest.raises(InvalidArgument, match="^hashtag: "):
            normalize_candidate(bad)


def test_manual_checks_the_tag_and_records_it(store):
    choice = choose_hashtag(store, "manual", manual="#Northern_Lights", now=T0)
    assert (choice.winner, choice.reason, caption_line(choice)) == (
        "northern_lights", "given by hand", "")
    assert load_choice(store, choice.choice_id) == choice
    with pytest.raises(InvalidArgument, match="^hashtag: "):
        choose_hashtag(store, "manual", manual="not a tag")
    with pytest.raises(InvalidArgument, match="^mode: "):
        choose_hashtag(store, "dice")


def test_evidence_names_voters_by_salted_hash_only(store):
    our_post(store)
    first = choose_hashtag(store, "vote", replies=thread(), now=T0 + 25 * HOUR)
    text = store.get_bytes(first.evidence_key).decode()
    for r in thread():
        assert r.author_handle not in text and r.author_id not in text
        assert len(r.text) < 8 or r.text not in text
    assert "example.social" not in text
    record = json.loads(text)
    voters = record["votes"]["candidates"][0]["voters"]
    assert len(voters) == 3 and all(v.startswith("h:") and len(v) == 18 for v in voters)
    salt = store.get_json(keys.VOTER_SALT_KEY)["salt"]
    # The next round's post and a second choice: the same accounts get the same names.
    our_post(store, "p2", "110", created=T0 + 26 * HOUR)
    again = [Reply(**{**vars(r), "post_id": "110", "created_unix": r.created_unix + 26 * HOUR})
             for r in thread() if r.post_id == "109"]
    second = choose_hashtag(store, "vote", replies=again, now=T0 + 51 * HOUR)
    assert store.get_json(keys.VOTER_SALT_KEY)["salt"] == salt  # made once
    # cats cooled down: ann's and bob's replies hold no other tag, cid's earlier #dogs now
    # counts, so dogs wins with 4: the 3 accounts of the first round under the same names.
    assert (second.winner, second.votes) == ("dogs", 4)
    second_dogs = evidence.read_evidence(store, second.choice_id)["votes"]["candidates"][0]
    first_dogs = record["votes"]["candidates"][1]
    assert first_dogs["hashtag"] == second_dogs["hashtag"] == "dogs"
    assert set(first_dogs["voters"]) < set(second_dogs["voters"])


def test_evidence_can_name_voters_by_handle(store, monkeypatch):
    monkeypatch.setenv("AUDIENCE_VOTER_PRIVACY", "handles")
    monkeypatch.setenv("AUDIENCE_HASH_SALT", "s3cret-salt")
    our_post(store)
    choice = choose_hashtag(store, "vote", replies=thread(), now=T0 + 25 * HOUR)
    record = evidence.read_evidence(store, choice.choice_id)
    assert record["votes"]["candidates"][0]["voters"] == [
        "mastodon:ann@example.social", "mastodon:bob@example.social",
        "mastodon:cid@example.social"]
    assert not store.exists(keys.VOTER_SALT_KEY)


def test_only_the_posts_since_the_last_choice_are_this_round(store):
    our_post(store, "old", "42", created=T0 - 2 * HOUR)
    choose_hashtag(store, "manual", manual="ocean", now=T0 - HOUR)
    our_post(store)
    choice = choose_hashtag(store, "vote", replies=thread(), now=T0 + 25 * HOUR)
    ignored = evidence.read_evidence(store, choice.choice_id)["votes"]["ignored_replies"]
    assert ignored["not_this_round"] == 1  # the reply to post 42, within its own window


def test_caption_lines(store, monkeypatch):
    our_post(store)
    monkeypatch.setenv("AUDIENCE_MIN_VOTES", "1")
    one = choose_hashtag(store, "vote", replies=[reply(1, "ann", "#owls", 1)],
                         now=T0 + 2 * HOUR)
    assert caption_line(one) == "Chosen by 1 vote."
    assert invitation_line() == INVITATION == "Reply with a hashtag to choose the next run."
    monkeypatch.setenv("AUDIENCE_INVITE", "false")
    assert invitation_line() == ""


def test_cli_chooses_from_json_files(store, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("STORAGE_BACKEND", "local")
    monkeypatch.setenv("STORAGE_DIR", str(tmp_path / "store"))
    trends = tmp_path / "trending.json"
    trends.write_text(json.dumps([{"name": "#Aurora", "source": "bluesky", "rank": 1},
                                  {"name": "tide", "source": "x", "rank": 1, "uses": 3}]))
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([vars(r) for r in thread()]))
    assert replies_from_json(json.loads(replies.read_text())) == thread()
    assert cli.main(["choose", "--mode", "vote-else-trending", "--replies", str(replies),
                     "--trending", str(trends)]) == 0
    out = capsys.readouterr().out
    assert "hashtag:    #tide" in out  # no post in this store: no votes, so trending
    assert "runner-ups: #aurora" in out
    key = out.split("evidence:   ")[1].split()[0]
    assert store.get_json(key)["winner"] == "tide"
    trends.write_text('{"name": "x"}')
    assert cli.main(["choose", "--mode", "trending", "--trending", str(trends)]) == 1
    assert "--trending: must be a JSON list" in capsys.readouterr().err
