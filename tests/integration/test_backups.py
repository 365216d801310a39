"""Scheduled automatic backups: a real berthd makes them itself, through the same
forked writer as `berth site archive`, and the real CLI, API and `berth apply` set
and show the schedule.

berthd takes the scheduler's clock from BERTH_TEST_BACKUP_CLOCK_FILE and looks
every BERTH_TEST_BACKUP_TICK_MS, so a test moves the clock a day on and sees the
backup made within a moment, without waiting for 03:00."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import wait_for
from test_archive import V1, V2, backups, blog, write_zip  # noqa: F401 (blog is a fixture)
from test_panel_api import Browser, add_user
from test_sites import api, db_rows

DAY = 86400
TICK_MS = 100


@pytest.fixture
def clock(tmp_path):
    path = tmp_path / "clock"
    path.write_text(str(int(time.time())))
    return path


def daemon_env(clock, gate=None):
    env = {"BERTH_TEST_BACKUP_TICK_MS": str(TICK_MS), "BERTH_TEST_BACKUP_CLOCK_FILE": str(clock)}
    if gate:
        env["BERTH_TEST_ARCHIVE_GATE"] = str(gate)
    return env


@pytest.fixture
def daemon(daemon_factory, clock):
    """This module's berthd: the scheduler on the test's clock."""
    return daemon_factory().start(env=daemon_env(clock))


def set_clock(clock, t):
    clock.write_text(str(int(t)))


def an_hour_away():
    """An hour of the day at least an hour from now (UTC), so that nothing is due
    on the real clock while a test runs."""
    return (time.gmtime().tm_hour + 12) % 24


def show(daemon, name="blog"):
    return daemon.ok("site", "show", name)


def automatic(info):
    return sorted(n for n in os.listdir(backups(info)) if "-auto" in n)


def wait_backup(daemon, name, after_at, timeout=20):
    """Waits until site name's last automatic backup started at or after after_at
    and has ended; returns its record."""
    def done():
        b = show(daemon, name)["backups"]
        return b["last"] is not None and b["last"]["at"] >= after_at and not b["running"]
    wait_for(done, timeout=timeout)
    return show(daemon, name)["backups"]


def run_due_backup(daemon, clock, name="blog"):
    """Moves the clock to the site's next due time and waits for the backup it makes."""
    due = show(daemon, name)["backups"]["next_due"]
    assert due is not None
    set_clock(clock, due)
    return wait_backup(daemon, name, due)


def events(daemon, site, prefix="site.backup"):
    return [(actor, action, json.loads(detail)) for actor, action, detail in
            db_rows(daemon, "SELECT actor, action, detail FROM events WHERE target = ? ORDER BY id", site)
            if action.startswith(prefix)]


# ---- a daily schedule ----

def test_a_daily_schedule_makes_an_automatic_snapshot_that_is_listed_and_restores(daemon, clock, blog, tmp_path):
    hour = an_hour_away()
    b = show(daemon)["backups"]
    assert (b["every"], b["hour"], b["keep"], b["next_due"], b["last"]) == ("off", 3, 7, None, None)
    r = daemon.berth("site", "set", "blog", "--backups", "daily", "--backup-hour", hour)
    assert r.returncode == 0, r
    b = show(daemon)["backups"]
    assert (b["every"], b["hour"], b["keep"], b["last"]) == ("daily", hour, 7, None)
    # The first one is at the next such hour, not at once.
    now = int(time.time())
    assert now < b["next_due"] <= now + DAY and b["next_due"] % 3600 == 0
    assert time.gmtime(b["next_due"]).tm_hour == hour
    time.sleep(5 * TICK_MS / 1000)
    assert automatic(blog) == []

    due = b["next_due"]
    b = run_due_backup(daemon, clock)
    last = b["last"]
    assert last["ok"] and last["error"] is None and last["at"] == due, b
    name = last["snapshot"]
    assert name.startswith("blog-") and name.endswith("-auto.tar.zst"), name
    assert automatic(blog) == [name]
    # Root's, group the site's, 0640, like a snapshot made by hand.
    st = os.stat(os.path.join(backups(blog), name))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, blog["uid"], 0o640)
    # Next: the same hour the next day.
    assert b["next_due"] == due + DAY
    # Listed, and shown by site show.
    assert [a["name"] for a in daemon.ok("site", "archives", "blog")["archives"]] == [name]
    text = daemon.berth("site", "show", "blog")
    assert text.returncode == 0, text
    assert f"daily at {hour:02d}:00 UTC, the 7 newest kept" in text.stdout, text.stdout
    assert f"ok: {name}" in text.stdout, text.stdout
    # Audited, by berthd.
    assert events(daemon, "blog") == [("berthd", "site.backup", {"name": name, "size": st.st_size, "pruned": 0})]
    # Nothing more until the next day.
    time.sleep(5 * TICK_MS / 1000)
    assert automatic(blog) == [name]

    # It restores like any snapshot.
    index = os.path.join(blog["dir"], "public", "index.html")
    assert open(index, "rb").read() == V1
    r = daemon.berth("site", "upload", "blog", write_zip(tmp_path / "v2.zip", [("index.html", V2)]))
    assert r.returncode == 0, r
    assert open(index, "rb").read() == V2
    r = daemon.berth("site", "restore", "blog", name)
    assert r.returncode == 0, r
    assert open(index, "rb").read() == V1


def test_keep_prunes_the_oldest_automatic_snapshots_and_never_one_made_by_hand(daemon, clock, blog):
    manual = daemon.ok("site", "archive", "blog")["name"]
    daemon.ok("site", "set", "blog", "--backups", "daily", "--backup-hour", an_hour_away(), "--backup-keep", "2")
    made = []
    for _ in range(3):
        made.append(run_due_backup(daemon, clock)["last"]["snapshot"])
    assert len(set(made)) == 3 and all("-auto" in m for m in made), made
    listed = [a["name"] for a in daemon.ok("site", "archives", "blog")["archives"]]
    assert sorted(listed) == sorted([manual] + made[1:]), listed
    assert [d["pruned"] for _, _, d in events(daemon, "blog")] == [0, 0, 1]
    # --keep on a hand-made snapshot counts those only: the automatic ones stay.
    manual2 = daemon.ok("site", "archive", "blog", "--keep", "1")
    assert manual2["pruned"] == [manual]
    listed = [a["name"] for a in daemon.ok("site", "archives", "blog")["archives"]]
    assert sorted(listed) == sorted([manual2["name"]] + made[1:]), listed


# ---- many sites: one at a time ----

def test_two_sites_due_at_once_are_both_backed_up_one_at_a_time(daemon_factory, clock, tmp_path):
    gate = tmp_path / "gate"
    daemon = daemon_factory().start(env=daemon_env(clock, gate=gate))
    hour = an_hour_away()
    for name in ("one", "two"):
        daemon.ok("site", "create", name)
        daemon.ok("site", "set", name, "--backups", "daily", "--backup-hour", hour)
    due = show(daemon, "one")["backups"]["next_due"]
    assert show(daemon, "two")["backups"]["next_due"] == due
    set_clock(clock, due)
    # The first writer is held at the gate: the other site waits its turn.
    wait_for(lambda: show(daemon, "one")["backups"]["running"] or show(daemon, "two")["backups"]["running"])
    first, second = ("one", "two") if show(daemon, "one")["backups"]["running"] else ("two", "one")
    for _ in range(5):
        time.sleep(TICK_MS / 1000)
        b = show(daemon, second)["backups"]
        assert not b["running"] and b["last"] is None, b
    # A snapshot by hand of the busy site waits too (409), and the site stays.
    r = daemon.berth("site", "archive", first)
    assert r.returncode == 1 and "is being made" in r.stderr, r
    r = daemon.berth("site", "rm", first)
    assert r.returncode == 1 and "is being made" in r.stderr, r
    gate.write_text("")
    for name in (first, second):
        b = wait_backup(daemon, name, due)
        assert b["last"]["ok"], b
    a1 = db_rows(daemon, "SELECT id FROM events WHERE target = ? AND action = 'site.backup'", first)
    a2 = db_rows(daemon, "SELECT id FROM events WHERE target = ? AND action = 'site.backup'", second)
    assert len(a1) == 1 and len(a2) == 1 and a1[0][0] < a2[0][0]
    for name in ("one", "two"):
        assert len(automatic(show(daemon, name))) == 1


# ---- berthd was down ----

def test_a_backup_missed_while_berthd_was_down_runs_once_at_the_next_start(daemon_factory, clock):
    daemon = daemon_factory().start(env=daemon_env(clock))
    daemon.ok("site", "create", "blog")
    daemon.ok("site", "set", "blog", "--backups", "daily", "--backup-hour", an_hour_away())
    first = run_due_backup(daemon, clock)
    daemon.stop()
    # Three days pass with berthd down: three due times missed.
    set_clock(clock, first["last"]["at"] + 3 * DAY + 60)
    daemon.start(env=daemon_env(clock))
    b = wait_backup(daemon, "blog", first["last"]["at"] + 3 * DAY)
    assert b["last"]["ok"], b
    time.sleep(10 * TICK_MS / 1000)
    info = show(daemon)
    assert len(automatic(info)) == 2, os.listdir(backups(info))
    assert len(events(daemon, "blog")) == 2
    # The next one is the next day's, not one of the missed ones.
    assert info["backups"]["next_due"] > first["last"]["at"] + 3 * DAY


# ---- a crash mid-backup ----

def test_a_crash_in_the_middle_of_a_backup_leaves_nothing_and_it_runs_at_the_next_start(
        daemon_factory, clock, tmp_path):
    gate = tmp_path / "gate"
    daemon = daemon_factory().start(env=daemon_env(clock, gate=gate))
    info = daemon.ok("site", "create", "blog")
    gate.write_text("")
    manual = daemon.ok("site", "archive", "blog")["name"]
    gate.unlink()
    daemon.ok("site", "set", "blog", "--backups", "daily", "--backup-hour", an_hour_away())
    due = show(daemon)["backups"]["next_due"]
    set_clock(clock, due)
    wait_for(lambda: show(daemon)["backups"]["running"])
    daemon.kill9()
    # The writer (held at the gate) goes on alone and ends; its file never had a name.
    gate.write_text("")
    time.sleep(1)
    assert os.listdir(backups(info)) == [manual]
    daemon.start(env=daemon_env(clock, gate=gate))
    assert os.listdir(backups(info)) == [manual]
    assert [a["name"] for a in daemon.ok("site", "archives", "blog")["archives"]] == [manual]
    # Nothing was recorded, so it is still due: made once berthd is back.
    b = wait_backup(daemon, "blog", due)
    assert b["last"]["ok"], b
    assert sorted(os.listdir(backups(info))) == sorted([manual, b["last"]["snapshot"]])


# ---- a failure ----

def test_a_failed_backup_is_reported_keeps_the_old_snapshots_and_is_retried_at_the_next_due_time(
        daemon, clock, blog):
    bk = backups(blog)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=256k,mode=0750,uid=0,gid={blog['uid']}", "berth-test",
                    bk], check=True)
    try:
        daemon.ok("site", "set", "blog", "--backups", "weekly", "--backup-hour", an_hour_away())
        good = run_due_backup(daemon, clock)["last"]["snapshot"]
        kept = open(os.path.join(bk, good), "rb").read()
        used = shutil.disk_usage(bk).used
        with open(os.path.join(blog["dir"], "public", "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        due = show(daemon)["backups"]["next_due"]
        b = run_due_backup(daemon, clock)
        last = b["last"]
        assert not last["ok"] and last["snapshot"] is None and "disk is full" in last["error"], b
        # Nothing half written, the old one whole.
        assert os.listdir(bk) == [good]
        assert open(os.path.join(bk, good), "rb").read() == kept
        assert shutil.disk_usage(bk).used == used
        # Reported: API, site show, audit log.
        status, body = api(daemon, "GET", "/api/v1/sites/blog")
        assert status == 200 and body["backups"]["last"] == last, body
        text = daemon.berth("site", "show", "blog").stdout
        assert "FAILED" in text and "disk is full" in text, text
        assert events(daemon, "blog")[-1][:2] == ("berthd", "site.backup_failed")
        assert "disk is full" in events(daemon, "blog")[-1][2]["error"]
        # Not retried at once: at the next due time (a week on).
        assert b["next_due"] == due + 7 * DAY
        time.sleep(5 * TICK_MS / 1000)
        assert show(daemon)["backups"]["last"] == last
        os.unlink(os.path.join(blog["dir"], "public", "big.bin"))
        b = run_due_backup(daemon, clock)
        assert b["last"]["ok"], b
        assert sorted(os.listdir(bk)) == sorted([good, b["last"]["snapshot"]])
    finally:
        subprocess.run(["umount", bk], check=True)


# ---- bad values, and who may ----

@pytest.mark.parametrize("args", [
    ["--backups", "hourly"], ["--backups", ""], ["--backup-hour", "24"], ["--backup-hour", "-1"],
    ["--backup-hour", "3am"], ["--backup-keep", "0"], ["--backup-keep", "1001"], ["--backup-keep", "x"]])
def test_bad_cli_values_are_usage_errors_and_change_nothing(daemon, args):
    daemon.ok("site", "create", "blog")
    daemon.ok("site", "set", "blog", "--backups", "weekly", "--backup-hour", "5", "--backup-keep", "3")
    before = show(daemon)["backups"]
    r = daemon.berth("site", "set", "blog", *args)
    assert r.returncode == 2 and r.stderr.startswith("berth: ") and args[0] in r.stderr, r
    assert show(daemon)["backups"] == before


@pytest.mark.parametrize("backups", [
    {"every": "hourly"}, {"every": 1}, {"hour": 24}, {"hour": -1}, {"hour": 2.5}, {"hour": "3"},
    {"keep": 0}, {"keep": 1001}, {"keep": None}, {"when": "daily"}, "daily", None, []])
def test_bad_api_values_are_refused_with_400_and_change_nothing(daemon, backups):
    daemon.ok("site", "create", "blog")
    daemon.ok("site", "set", "blog", "--backups", "weekly", "--backup-hour", "5", "--backup-keep", "3")
    before = show(daemon)
    status, body = api(daemon, "PATCH", "/api/v1/sites/blog", {"backups": backups, "memory": "512M"})
    assert status == 400 and "backups" in body["error"]["message"], body
    after = show(daemon)
    assert after["backups"] == before["backups"] and after["limits"] == before["limits"]
    status, body = api(daemon, "POST", "/api/v1/sites", {"name": "other", "backups": backups})
    assert status == 400, body
    assert daemon.berth("site", "show", "other").returncode == 1


def test_the_api_sets_the_schedule_in_parts_and_at_create(daemon):
    status, body = api(daemon, "POST", "/api/v1/sites", {"name": "blog", "backups": {"every": "weekly"}})
    assert status == 201 and (body["backups"]["every"], body["backups"]["hour"], body["backups"]["keep"]) == \
        ("weekly", 3, 7), body
    assert time.gmtime(body["backups"]["next_due"]).tm_wday == 6   # a Sunday
    status, body = api(daemon, "PATCH", "/api/v1/sites/blog", {"backups": {"keep": 30}})
    assert status == 200 and (body["backups"]["every"], body["backups"]["keep"]) == ("weekly", 30), body
    status, body = api(daemon, "PATCH", "/api/v1/sites/blog", {"backups": {"every": "off"}})
    assert status == 200 and body["backups"]["every"] == "off" and body["backups"]["next_due"] is None, body


def test_site_create_takes_a_schedule_too(daemon):
    info = daemon.ok("site", "create", "blog", "--backups", "weekly", "--backup-keep", "3")
    b = info["backups"]
    assert (b["every"], b["hour"], b["keep"], b["last"]) == ("weekly", 3, 3, None), b
    r = daemon.berth("site", "create", "other", "--backups", "monthly")
    assert r.returncode == 2 and "--backups" in r.stderr, r
    assert daemon.berth("site", "show", "other").returncode == 1


def test_the_owner_and_an_admin_set_the_schedule_and_nobody_else(daemon):
    for user in ["alice", "bob"]:
        add_user(daemon, user)
    alice, bob = Browser(daemon), Browser(daemon)
    assert alice.login("alice").status == 200 and bob.login("bob").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "alices"}).status == 201
    a = alice.request("PATCH", "/api/v1/sites/alices", {"backups": {"every": "daily", "hour": 4}})
    assert a.status == 200 and a.json["backups"]["every"] == "daily", a
    a = bob.request("PATCH", "/api/v1/sites/alices", {"backups": {"every": "off"}})
    assert a.status == 404, a
    assert show(daemon, "alices")["backups"]["every"] == "daily"
    daemon.ok("site", "set", "alices", "--backups", "off")   # root is an admin
    assert alice.request("GET", "/api/v1/sites/alices").json["backups"]["every"] == "off"


# ---- berth apply ----

def apply(daemon, tmp_path, text, *extra):
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    return daemon.berth("apply", path, *extra)


def test_apply_sets_changes_and_clears_the_schedule(daemon, tmp_path):
    r = apply(daemon, tmp_path, "sites:\n  blog:\n    backups: {every: weekly, hour: 5, keep: 3}\n")
    assert r.returncode == 0, r
    b = show(daemon)["backups"]
    assert (b["every"], b["hour"], b["keep"]) == ("weekly", 5, 3)
    # Left out: hour 3, keep 7.
    text = "sites:\n  blog:\n    backups: {every: daily}\n"
    r = apply(daemon, tmp_path, text, "--dry-run")
    assert r.returncode == 0 and "backups weekly at 05:00 UTC, keep 3 -> daily at 03:00 UTC, keep 7" in r.stdout, r
    assert show(daemon)["backups"]["every"] == "weekly"
    assert apply(daemon, tmp_path, text).returncode == 0
    b = show(daemon)["backups"]
    assert (b["every"], b["hour"], b["keep"]) == ("daily", 3, 7)
    r = apply(daemon, tmp_path, text)
    assert r.returncode == 0 and "0 changes, 1 site unchanged" in r.stdout, r
    # Not in the file: off.
    r = apply(daemon, tmp_path, "sites:\n  blog: {}\n", "--dry-run")
    assert r.returncode == 0 and "backups daily -> off" in r.stdout, r
    assert show(daemon)["backups"]["every"] == "daily"
    assert apply(daemon, tmp_path, "sites:\n  blog: {}\n").returncode == 0
    assert show(daemon)["backups"]["every"] == "off"
    # A bare cadence.
    assert apply(daemon, tmp_path, "sites:\n  blog:\n    backups: weekly\n").returncode == 0
    b = show(daemon)["backups"]
    assert (b["every"], b["hour"], b["keep"]) == ("weekly", 3, 7)


@pytest.mark.parametrize("value,why", [
    ("{every: hourly}", "daily, weekly or off"), ("{every: daily, hour: 24}", "0 to 23"),
    ("{every: daily, keep: 0}", "1 to 1000"), ("{hour: 3}", "needs \"every\""),
    ("{every: daily, at: 3}", "unknown setting"), ("[daily]", "mapping"), ("sometimes", "off, daily, weekly")])
def test_apply_refuses_bad_schedules_and_changes_nothing(daemon, tmp_path, value, why):
    daemon.ok("site", "create", "blog")
    daemon.ok("site", "set", "blog", "--backups", "weekly")
    r = apply(daemon, tmp_path, f"sites:\n  blog:\n    memory: 512M\n    backups: {value}\n")
    assert r.returncode == 1 and why in r.stderr and "/sites/blog/backups" in r.stderr, r
    info = show(daemon)
    assert info["backups"]["every"] == "weekly" and info["limits"]["memory"] != "512M"
