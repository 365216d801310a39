"""berth apply: a YAML file of sites made true, with --dry-run and --prune; bad files
refused before anything changes."""
import json
import os

import pytest


def apply(d, path, *args, json_out=False):
    return d.berth("apply", str(path), *args, json_out=json_out)


FLEET = """\
sites:
  blog:
    type: php
    domains: [blog.example.org, www.blog.example.org]
    memory: 512M
    io_write: 20M
    php: {memory_limit: 256M}
  docs:
  shop:
    type: app
    cmd: "exec python3 -c pass"
    state: stopped
    idle: 60
"""


def test_apply_creates_then_is_idempotent_then_converges(daemon, tmp_path):
    daemon.ok("site", "create", "old")
    f = tmp_path / "sites.yaml"
    f.write_text(FLEET)

    r = apply(daemon, f, "--dry-run")
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["+ blog: create (php)", "+ docs: create (static)", "+ shop: create (app)",
                                     "dry run: 3 changes, 0 sites unchanged"]
    assert [s["name"] for s in daemon.ok("site", "ls")["sites"]] == ["old"]

    r = apply(daemon, f)
    assert r.returncode == 0, r
    sites = {s["name"]: s for s in daemon.ok("site", "ls")["sites"]}
    assert set(sites) == {"old", "blog", "docs", "shop"}   # no --prune: old stays
    assert sites["blog"]["type"] == "php" and sites["blog"]["limits"]["memory"] == "512M"
    assert sites["blog"]["limits"]["io_write"] == "20M/s" and sites["blog"]["limits"]["io_read"] == "unlimited"
    assert sites["blog"]["domains"] == ["blog.example.org", "www.blog.example.org"]
    assert sites["blog"]["php"] == {"memory_limit": "256M"}
    assert sites["shop"]["desired_state"] == "stopped" and sites["shop"]["idle_seconds"] == 60
    assert sites["docs"]["type"] == "static"

    r = apply(daemon, f)
    assert r.returncode == 0 and r.stdout == "0 changes, 3 sites unchanged\n", r

    # a domain moves from blog to docs in one apply; php keys not named go back to
    # berth's defaults; --prune removes what the file does not name
    f.write_text("""\
sites:
  blog:
    type: php
    domains: [www.blog.example.org]
    memory: 256M
    io_write: 30M
    cpu: 0.5
    php:
      date.timezone: Europe/Paris
  docs: {domains: [blog.example.org], always_on: true}
  shop: {state: running}
""")
    r = apply(daemon, f, "--prune", json_out=True)
    assert r.returncode == 0, r
    report = r.json()
    changes = {c["site"]: c for c in report["changes"]}
    assert changes["old"]["change"] == "remove"
    assert "domain -blog.example.org" in changes["blog"]["summary"]
    assert "php memory_limit back to default" in changes["blog"]["summary"]
    assert "io_write 20M/s -> 30M" in changes["blog"]["summary"]
    assert report["applied"] == 4 and report["dry_run"] is False
    sites = {s["name"]: s for s in daemon.ok("site", "ls")["sites"]}
    assert set(sites) == {"blog", "docs", "shop"}
    assert sites["blog"]["domains"] == ["www.blog.example.org"]
    assert sites["blog"]["limits"]["memory"] == "256M" and sites["blog"]["limits"]["cpu"] == "0.5"
    assert sites["blog"]["php"] == {"date.timezone": "Europe/Paris"}
    assert sites["docs"]["domains"] == ["blog.example.org"] and sites["docs"]["always_on"] is True
    assert sites["shop"]["desired_state"] == "running"
    # fields the file leaves out keep their values
    assert sites["shop"]["idle_seconds"] == 60 and sites["shop"]["cmd"] == "exec python3 -c pass"


def test_bad_files_change_nothing_and_say_where(daemon, tmp_path):
    daemon.ok("site", "create", "keep", "--memory", "300M")
    cases = [
        ("sites:\n  keep: {memroy: 1G}\n", "/sites/keep/memroy: unknown setting \"memroy\""),
        ("sites:\n  keep: [\n", "not valid YAML"),
        ("sites:\n  a: {}\n  a: {}\n", "duplicate key"),
        ("sites:\n  Bad_Name: {}\n", "\"Bad_Name\" is not a valid site name"),
        ("sites:\n  zzz: {}\n  www: {}\n", "/sites/www: the site name \"www\" is reserved"),
        ("sites:\n  keep: {pids: lots}\n", "/sites/keep/pids: must be a whole number"),
        ("sites:\n  keep: {always_on: maybe}\n", "/sites/keep/always_on: must be true or false"),
        ("sites:\n  keep: {state: paused}\n", "/sites/keep/state: must be running or stopped"),
        ("sites:\n  keep: {domains: example.org}\n", "/sites/keep/domains: must be a list"),
        ("site:\n  keep: {}\n", "unknown key \"site\""),
        ("- keep\n", "the top level must be a mapping"),
        ("sites:\n  keep: {memory: &m 1G}\n  new: {memory: *m}\n", "/sites/new/memory: YAML aliases"),
        ("sites:\n  keep: &k {memory: 1G}\n  new: *k\n", "/sites/new: YAML aliases"),
        ('sites:\n  new: {type: app, cmd: "x\\0y"}\n', "/sites/new/cmd: a value may not hold a NUL byte"),
    ]
    for i, (text, message) in enumerate(cases):
        f = tmp_path / f"bad{i}.yaml"
        f.write_text(text)
        r = apply(daemon, f, "--prune")
        assert r.returncode == 1, (text, r)
        assert message in r.stderr, (text, r.stderr)
    # the daemon's own checks: refused, named, and checked before anything is made
    f = tmp_path / "refused.yaml"
    f.write_text("sites:\n  keep: {memory: 300M, php: {memory_limit: 1G}}\n  zzz: {}\n")
    r = apply(daemon, f)
    assert r.returncode == 1 and "berth: site keep is not a PHP site" in r.stderr, r
    assert "nothing was changed" in r.stderr
    assert [s["name"] for s in daemon.ok("site", "ls")["sites"]] == ["keep"]
    assert daemon.ok("site", "show", "keep")["limits"]["memory"] == "300M"

    r = daemon.berth("apply", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "cannot read" in r.stderr
    r = daemon.berth("apply")
    assert r.returncode == 2
    r = daemon.berth("apply", str(f), "--force")
    assert r.returncode == 2 and "unknown option --force" in r.stderr


def test_a_value_the_daemon_refuses_changes_nothing_even_with_prune(daemon, tmp_path):
    """The daemon's own checks (a size, a CPU amount, an idle time, a domain) run for
    every site before the first change: a refusal late in the file must not leave the
    sites before it made, nor the pruned sites removed with their content."""
    daemon.ok("site", "create", "old", "--memory", "300M")
    content = tmp_path / "content"
    content.mkdir()
    (content / "index.html").write_text("old content\n")
    daemon.ok("site", "upload", "old", str(content))
    cases = [
        ("sites:\n  aaa: {}\n  new: {memory: lots}\n", "invalid memory limit"),
        ("sites:\n  aaa: {}\n  new: {cpu: many}\n", "invalid CPU limit"),
        ("sites:\n  aaa: {}\n  new: {idle: 5}\n", "idle time"),
        ("sites:\n  aaa: {}\n  new: {domains: ['bad domain']}\n", "invalid domain"),
        ("sites:\n  aaa: {}\n  old: {memory: lots}\n", "invalid memory limit"),
    ]
    for i, (text, message) in enumerate(cases):
        f = tmp_path / f"refused{i}.yaml"
        f.write_text(text)
        for args in (["--dry-run", "--prune"], ["--prune"]):
            r = apply(daemon, f, *args)
            assert r.returncode == 1, (text, args, r)
            assert message in r.stderr and "nothing was changed" in r.stderr, (text, args, r.stderr)
            assert len(r.stderr.splitlines()) == 1, r.stderr
        sites = daemon.ok("site", "ls")["sites"]
        assert [s["name"] for s in sites] == ["old"], text
        assert sites[0]["limits"]["memory"] == "300M"
    index = daemon.state_dir / "sites" / "old" / "public" / "index.html"
    assert index.read_text() == "old content\n"


def test_a_domain_another_site_keeps_changes_nothing_even_with_prune(daemon, tmp_path):
    """A domain the file gives to one site while another site keeps it (a site the file
    does not name, or names without its domains) can only fail: it is found before
    anything is made or pruned. Moving it, or taking it from a pruned site, works."""
    daemon.ok("site", "create", "old")
    daemon.ok("site", "create", "other", "--domain", "shop.example.org")
    cases = [
        "sites:\n  other: {}\n  aaa: {}\n  new: {domains: [Shop.Example.org]}\n",
        "sites:\n  other: {memory: 512M}\n  new: {domains: [shop.example.org]}\n",
        "sites:\n  other: {}\n  new: {domains: [a.example.org]}\n  zzz: {domains: [a.example.org]}\n",
    ]
    for i, text in enumerate(cases):
        f = tmp_path / f"taken{i}.yaml"
        f.write_text(text)
        r = apply(daemon, f, "--prune")
        assert r.returncode == 1, (text, r)
        assert "example.org" in r.stderr and "nothing was changed" in r.stderr, (text, r.stderr)
        sites = {s["name"]: s for s in daemon.ok("site", "ls")["sites"]}
        assert set(sites) == {"old", "other"}, text
        assert sites["other"]["domains"] == ["shop.example.org"]
        assert sites["other"]["limits"]["memory"] == "256M"
    # the same domain taken from a site the file prunes: allowed
    f = tmp_path / "moved.yaml"
    f.write_text("sites:\n  old: {}\n  new: {domains: [shop.example.org]}\n")
    r = apply(daemon, f, "--prune")
    assert r.returncode == 0, r
    sites = {s["name"]: s for s in daemon.ok("site", "ls")["sites"]}
    assert set(sites) == {"old", "new"} and sites["new"]["domains"] == ["shop.example.org"]


def site_dirs(d):
    from test_sites import site_dirs as settled
    return settled(d)


def test_a_refusal_no_check_foresees_changes_nothing(daemon, tmp_path):
    """What only making the change can find (here the site uid range runs out at the
    second new site) undoes the whole file: one line on stderr, the first new site not
    made, no half-made tree left. A dry run finds it too, since it makes the changes
    and undoes them."""
    first, last = daemon.uid_range
    for i in range(last - first):
        daemon.ok("site", "create", f"s{i}")
    before = site_dirs(daemon)
    f = tmp_path / "sites.yaml"
    f.write_text("sites:\n  aaa: {}\n  bbb: {}\n  s0: {memory: 512M}\n")
    for args in ([], ["--dry-run"]):
        r = apply(daemon, f, *args)
        assert r.returncode == 1, r
        assert r.stderr.splitlines() == [
            "berth: site bbb: no free uid is left in the site uid range; nothing was changed"], r.stderr
        names = {s["name"] for s in daemon.ok("site", "ls")["sites"]}
        assert "aaa" not in names and "bbb" not in names
        assert daemon.ok("site", "show", "s0")["limits"]["memory"] == "256M"
        assert site_dirs(daemon) == before
    r = apply(daemon, f, json_out=True)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r
    assert r.json()["error"]["status"] == 507, r.stdout
    daemon.ok("site", "rm", "s1")
    daemon.ok("site", "rm", "s2")
    r = apply(daemon, f, json_out=True)
    assert r.returncode == 0, r
    assert r.json()["applied"] == 3
    assert daemon.ok("site", "show", "s0")["limits"]["memory"] == "512M"
    assert {"aaa", "bbb"} <= set(site_dirs(daemon))


@pytest.mark.parametrize("point,new_fleet", [
    ("sites-batch:staged", False),
    ("sites-batch:stored", True),
])
def test_kill9_during_apply_leaves_the_old_fleet_or_the_new(daemon_factory, tmp_path, point, new_fleet):
    """berthd killed while it makes a file's changes: after a restart the store and the
    disk hold every change or none, never the sites before the kill point made and
    the rest not."""
    d = daemon_factory().start()
    d.ok("site", "create", "old")
    (d.state_dir / "sites/old/public/index.html").write_text("old content")
    d.ok("site", "create", "keep", "--memory", "300M")
    d.stop()
    d.start(env={"BERTH_TEST_CRASH": point})
    f = tmp_path / "fleet.yaml"
    f.write_text("sites:\n  keep: {memory: 512M, domains: [keep.example.org]}\n  new1: {}\n"
                 "  new2: {type: php}\n")
    r = apply(d, f, "--prune")
    assert r.returncode == 1, "the daemon died mid-request"
    assert d.proc.wait(timeout=20) == -9
    d.proc = None
    d.start()
    sites = {s["name"]: s for s in d.ok("site", "ls")["sites"]}
    if new_fleet:
        assert set(sites) == {"keep", "new1", "new2"}
        assert sites["keep"]["limits"]["memory"] == "512M"
        assert sites["keep"]["domains"] == ["keep.example.org"]
        assert sites["new2"]["type"] == "php"
        for name in ("new1", "new2"):
            uid = d.ok("site", "show", name)["uid"]
            assert os.stat(d.state_dir / "sites" / name / "public").st_uid == uid
    else:
        assert set(sites) == {"keep", "old"}
        assert sites["keep"]["limits"]["memory"] == "300M" and sites["keep"]["domains"] == []
        assert (d.state_dir / "sites/old/public/index.html").read_text() == "old content"
    assert site_dirs(d) == sorted(sites)


def test_the_api_makes_a_batch_whole_or_not_at_all(daemon):
    """POST /api/v1/apply: each step checked as its own request would be, with the same
    rights; the first refusal names its site and undoes the steps before it."""
    from test_sites import api
    daemon.ok("site", "create", "old")
    daemon.ok("site", "create", "busy", "--domain", "taken.example.org")
    status, body = api(daemon, "POST", "/api/v1/apply", {"changes": [
        {"site": "old", "remove": True},
        {"create": {"name": "fresh", "domains": ["fresh.example.org"]}},
        {"site": "busy", "change": {"memory": "512M"}},
        {"create": {"name": "late", "domains": ["taken.example.org"]}},
    ]})
    assert status == 409, body
    assert body["error"]["message"] == ("site late: domain taken.example.org already belongs to site busy; "
                                        "nothing was changed"), body
    names = sorted(s["name"] for s in daemon.ok("site", "ls")["sites"])
    assert names == ["busy", "old"] and site_dirs(daemon) == names
    assert daemon.ok("site", "show", "busy")["limits"]["memory"] == "256M"

    # the domain moves within one batch: off busy first, then onto the new site
    status, body = api(daemon, "POST", "/api/v1/apply", {"changes": [
        {"site": "busy", "change": {"remove_domains": ["taken.example.org"]}},
        {"create": {"name": "late", "domains": ["taken.example.org"], "state": "stopped"}},
        {"site": "late", "state": "running"},
        {"site": "old", "remove": True},
    ]})
    assert status == 200 and body == {"dry_run": False, "changes": 4}, body
    late = daemon.ok("site", "show", "late")
    assert late["domains"] == ["taken.example.org"] and late["desired_state"] == "running"
    assert sorted(site_dirs(daemon)) == ["busy", "late"]

    status, body = api(daemon, "POST", "/api/v1/apply?dry_run=1", {"changes": [
        {"site": "late", "remove": True}, {"create": {"name": "late"}}]})
    assert status == 400 and "removed and created again" in body["error"]["message"], body
    status, body = api(daemon, "POST", "/api/v1/apply?dry_run=1", {"changes": [{"site": "late", "remove": True}]})
    assert status == 200 and body["dry_run"] is True, body
    assert daemon.ok("site", "show", "late")["name"] == "late"

    bad = [
        ({"changes": {}}, 400, "a JSON body {\"changes\": [...]} is required"),
        ({"changes": [], "prune": True}, 400, 'unknown field "prune"'),
        ({"changes": [7]}, 400, "each change is a JSON object"),
        ({"changes": [{"site": "late"}]}, 400, "exactly one of"),
        ({"changes": [{"site": "late", "remove": True, "state": "running"}]}, 400, "exactly one of"),
        ({"changes": [{"remove": True}]}, 400, "needs the \"site\""),
        ({"changes": [{"site": "late", "state": "paused"}]}, 400, "\"running\" or \"stopped\""),
        ({"changes": [{"site": "ghost", "remove": True}]}, 404, 'no site named "ghost"'),
        ({"changes": [{"create": {"name": "x", "colour": "red"}}]}, 400, 'site x: unknown field "colour"'),
    ]
    for batch, want_status, want_message in bad:
        status, body = api(daemon, "POST", "/api/v1/apply", batch)
        assert status == want_status and want_message in body["error"]["message"], (batch, body)
    status, body = api(daemon, "GET", "/api/v1/apply")
    assert status == 405
    assert sorted(site_dirs(daemon)) == ["busy", "late"]


def test_a_site_made_stopped_never_runs(daemon, tmp_path):
    # An always-on app the file wants stopped is made stopped: its program never
    # starts, not even between a create and a stop.
    f = tmp_path / "stopped.yaml"
    f.write_text('sites:\n  quiet:\n    type: app\n    always_on: true\n    state: stopped\n'
                 '    cmd: "touch /site/private/ran; exec sleep 1000"\n')
    r = apply(daemon, f)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "+ quiet: create (app)", r
    info = daemon.ok("site", "show", "quiet")
    assert info["desired_state"] == "stopped", info
    import os
    import time
    time.sleep(1)
    assert not os.path.exists(os.path.join(info["dir"], "private", "ran"))
    assert daemon.ok("site", "show", "quiet")["runtime"]["pid"] is None
    assert "site quiet: started" not in daemon.log()


def test_every_site_that_does_not_start_after_a_batch_is_named(daemon_factory):
    """Sites a batch starts are started once it is committed; when some cannot start
    (here network nat is off in berth.yaml), the answer says the changes were made
    and names every site that did not start, not only the first: the others are
    tried too, so their failure is as fresh as the first one's."""
    from test_sites import api
    d = daemon_factory()
    d.root.mkdir(parents=True)
    d.config_path().write_text(f"site_uid_range: {d.uid_range[0]}-{d.uid_range[1]}\n"
                               "nat_ipv4: off\nnat_ipv6: off\n")
    d.start()
    for name in ("first", "second"):
        status, body = api(d, "POST", "/api/v1/sites", {"name": name, "type": "app", "cmd": "exec sleep 1000",
                                                        "network": "nat", "always_on": True, "state": "stopped"})
        assert status == 201, body
    status, body = api(d, "POST", "/api/v1/apply", {"changes": [
        {"site": "first", "state": "running"}, {"site": "second", "state": "running"}]})
    message = body["error"]["message"]
    assert status >= 400 and message.startswith("the changes were made, but "), body
    assert "site first" in message and "site second" in message, body
    for name in ("first", "second"):
        site = d.ok("site", "show", name)
        assert site["desired_state"] == "running" and site["runtime"]["state"] == "failed", site


def post_raw(d, path, data):
    """POST data as it is to api.sock; (status, answer) or the error sending it."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(d.socket))

    conn = UnixConnection("berthd", timeout=120)
    try:
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    except OSError as e:
        return None, repr(e)
    finally:
        conn.close()


def test_a_large_fleet_fits_in_one_batch(daemon_factory):
    """A fleet of a few thousand sites with their domains is one batch of a few
    megabytes: berthd takes it from root on api.sock (berth apply sent the same file
    one site at a time before batches). A body past what it takes is answered 413,
    which the client gets to read."""
    d = daemon_factory()
    d.root.mkdir(parents=True)
    first = 400000 + (os.getpid() % 50) * 10000
    d.config_path().write_text(f"site_uid_range: {first}-{first + 5999}\n")
    d.start()
    changes = [{"create": {"name": f"site-{i:04d}", "domains": [
        f"w{k}.customer-{i:04d}.hosting-provider-example.org" for k in range(8)]}} for i in range(3000)]
    data = json.dumps({"changes": changes}).encode()
    assert len(data) > 1024 * 1024
    status, body = post_raw(d, "/api/v1/apply?dry_run=1", data)
    assert status == 200 and body == {"dry_run": True, "changes": 3000}, (status, body)
    assert d.ok("site", "ls")["sites"] == []
    # past the limit: refused, and the answer arrives instead of a broken pipe
    status, body = post_raw(d, "/api/v1/sites", json.dumps({"name": "x" * (2 << 20)}).encode())
    assert status == 413 and "larger than" in body["error"]["message"], (status, body)


def test_berth_apply_checks_a_large_fleet_file_quickly(daemon_factory, tmp_path):
    """The file's check that no domain goes to two sites compares each domain once,
    not every pair of sites: a fleet of 3000 sites with 8 domains each is planned in
    seconds, and a clash is still found and named."""
    import time
    d = daemon_factory()
    d.root.mkdir(parents=True)
    first = 400000 + (os.getpid() % 50) * 10000
    d.config_path().write_text(f"site_uid_range: {first}-{first + 5999}\n")
    d.start()
    d.ok("site", "create", "keeper", "--domain", "kept.example.org")
    lines = ["sites:", "  keeper: {}"]
    for i in range(3000):
        domains = ", ".join(f"w{k}.customer-{i:04d}.hosting-provider-example.org" for k in range(8))
        lines.append(f"  site-{i:04d}: {{domains: [{domains}]}}")
    f = tmp_path / "fleet.yaml"
    f.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    r = d.berth("apply", str(f), "--dry-run", timeout=300)
    took = time.monotonic() - started
    assert r.returncode == 0, r
    assert r.stdout.splitlines()[-1] == "dry run: 3000 changes, 1 site unchanged", r.stdout[-300:]
    assert took < 30, took
    lines[-1] = lines[-1].replace("w7.customer-2999.hosting-provider-example.org", "W0.Customer-0005.hosting-provider-example.org")
    lines.append("  late: {domains: [Kept.example.org]}")
    f.write_text("\n".join(lines) + "\n")
    r = d.berth("apply", str(f), "--dry-run", timeout=300)
    assert r.returncode == 1 and r.stderr == ("berth: domain w0.customer-0005.hosting-provider-example.org is given "
                                              "to both site site-0005 and site site-2999; nothing was changed\n"), r
    lines.pop(-2)
    f.write_text("\n".join(lines) + "\n")
    r = d.berth("apply", str(f), "--dry-run", timeout=300)
    assert r.returncode == 1 and r.stderr == ("berth: domain kept.example.org is given to site late but site keeper "
                                              "keeps it; nothing was changed\n"), r


def test_a_directory_in_the_way_of_a_new_site_refuses_the_batch(daemon):
    """A directory under sites/ that no site owns (a removal that could not finish,
    a hand-made one) is in the way of a site of that name. The batch is refused
    before it commits: once committed it could not put the new tree in place, and
    the new site would have been made with whatever the old directory held."""
    from test_sites import api
    stray = daemon.state_dir / "sites" / "fresh"
    (stray / "public").mkdir(parents=True)
    (stray / "public" / "index.html").write_text("someone else's page")
    status, body = api(daemon, "POST", "/api/v1/apply", {"changes": [
        {"create": {"name": "other"}}, {"create": {"name": "fresh"}}]})
    assert status == 409 and "fresh" in body["error"]["message"] and \
        "nothing was changed" in body["error"]["message"], body
    assert daemon.ok("site", "ls")["sites"] == []
    assert sorted(p.name for p in (daemon.state_dir / "sites").iterdir()) == ["fresh"]
    assert (stray / "public" / "index.html").read_text() == "someone else's page"
