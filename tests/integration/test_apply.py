"""berth apply: a YAML file of sites made true, with --dry-run and --prune; bad files
refused before anything changes."""
import json


def apply(d, path, *args, json_out=False):
    return d.berth("apply", str(path), *args, json_out=json_out)


FLEET = """\
sites:
  blog:
    type: php
    domains: [blog.example.org, www.blog.example.org]
    memory: 512M
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
    ]
    for i, (text, message) in enumerate(cases):
        f = tmp_path / f"bad{i}.yaml"
        f.write_text(text)
        r = apply(daemon, f, "--prune")
        assert r.returncode == 1, (text, r)
        assert message in r.stderr, (text, r.stderr)
    # the daemon's own checks: refused, named, and nothing after it is made
    f = tmp_path / "refused.yaml"
    f.write_text("sites:\n  keep: {memory: 300M, php: {memory_limit: 1G}}\n  zzz: {}\n")
    r = apply(daemon, f)
    assert r.returncode == 1 and "berth: site keep is not a PHP site" in r.stderr, r
    assert "stopped after 0 of 2 changes" in r.stderr
    assert [s["name"] for s in daemon.ok("site", "ls")["sites"]] == ["keep"]
    assert daemon.ok("site", "show", "keep")["limits"]["memory"] == "300M"

    r = daemon.berth("apply", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "cannot read" in r.stderr
    r = daemon.berth("apply")
    assert r.returncode == 2
    r = daemon.berth("apply", str(f), "--force")
    assert r.returncode == 2 and "unknown option --force" in r.stderr
