"""berth site archive / archives / restore: snapshots made by a real berthd, driven
by the real CLI (and the API where a script would use it), checked on disk, over
HTTP, and against the files a user keeps.

A snapshot must come back whole (content, owners, modes, served); a hostile one
must change nothing; a full disk must leave nothing half written; another user
must not see or touch a site's snapshots."""
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
import zipfile

import pytest

from conftest import wait_for
from test_panel_api import Browser, add_user
from test_sites import api

V1 = b"<!doctype html><h1>version one</h1>\n"
V2 = b"<!doctype html><h1>version two</h1>\n"
CSS = b"body { color: teal }\n"
SECRET = b"db_password=hunter2\n"


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 5, 17, 12, 0, 0))
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            z.writestr(info, data)
    return path


def get(port, host, path="/"):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def backups(info):
    return os.path.join(info["dir"], "backups")


def snapshot_files(info):
    return sorted(n for n in os.listdir(backups(info)))


def tree(root):
    """{relative path: (kind, bytes or link target, uid, gid, mode)} of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                what = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                what = ("d", None)
            else:
                what = ("f", open(p, "rb").read())
            out[rel] = what + (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return out


def no_debris(info):
    left = [n for n in os.listdir(info["dir"]) if n.startswith(".upload-")]
    assert left == [], f"staging debris left: {left}"


@pytest.fixture
def blog(daemon, tmp_path):
    """A static site with public/ from an upload and private/ holding a secret and a
    folder, with the owners and modes berth gives them."""
    info = daemon.ok("site", "create", "blog")
    r = daemon.berth("site", "upload", "blog", write_zip(tmp_path / "v1.zip", [
        ("index.html", V1), ("css/site.css", CSS), ("bin/run.sh", b"#!/bin/sh\necho hi\n")]))
    assert r.returncode == 0, r
    os.symlink("index.html", os.path.join(info["dir"], "public", "home.html"))
    os.lchown(os.path.join(info["dir"], "public", "home.html"), info["uid"], -1)
    priv = os.path.join(info["dir"], "private")
    os.mkdir(os.path.join(priv, "conf"))
    with open(os.path.join(priv, "conf", "secret.env"), "wb") as f:
        f.write(SECRET)
    uid = info["uid"]
    os.chown(os.path.join(priv, "conf"), uid, uid)
    os.chmod(os.path.join(priv, "conf"), 0o2750)
    os.chown(os.path.join(priv, "conf", "secret.env"), uid, uid)
    os.chmod(os.path.join(priv, "conf", "secret.env"), 0o640)
    return info


def archive(daemon, site="blog", *extra):
    r = daemon.berth("site", "archive", site, *extra, json_out=True)
    assert r.returncode == 0, r
    return r.json()


# ---- archive, damage, restore ----

def test_archive_then_restore_brings_back_content_owners_modes_and_serves_it(daemon, blog):
    pub, priv = os.path.join(blog["dir"], "public"), os.path.join(blog["dir"], "private")
    before_pub, before_priv = tree(pub), tree(priv)
    r = daemon.berth("site", "archive", "blog")
    assert r.returncode == 0, r
    name = r.stdout.split()[0]
    assert name.startswith("blog-") and name.endswith(".tar.zst")
    snap = os.path.join(backups(blog), name)
    st = os.stat(snap)
    # Root's, readable by the site's group, changeable by nobody else.
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, blog["uid"], 0o640)
    # The name and the size, as people read sizes.
    assert r.stdout.split()[1][0].isdigit(), r.stdout
    assert snapshot_files(blog) == [name], "nothing but the snapshot in backups/"
    # A zstd pax tar with both folders and the settings.
    listing = subprocess.run(["tar", "--zstd", "-tf", snap], capture_output=True, text=True, check=True).stdout
    for entry in ["berth-site.json", "public/index.html", "public/css/site.css", "private/conf/secret.env"]:
        assert entry in listing.split("\n"), listing

    # Damage: new content, a deleted folder, a changed mode and owner, a lost secret.
    with open(os.path.join(pub, "index.html"), "wb") as f:
        f.write(V2)
    shutil.rmtree(os.path.join(pub, "css"))
    with open(os.path.join(pub, "new.html"), "wb") as f:
        f.write(b"new")
    os.chmod(os.path.join(pub, "bin", "run.sh"), 0o600)
    os.chown(os.path.join(pub, "bin", "run.sh"), 0, 0)
    os.unlink(os.path.join(priv, "conf", "secret.env"))
    port = daemon.http_port()
    assert get(port, "blog.test.berth") == (200, V2)

    r = daemon.berth("site", "restore", "blog", name)
    assert r.returncode == 0, r
    assert "restored 4 files" in r.stdout, r.stdout
    assert tree(pub) == before_pub
    assert tree(priv) == before_priv
    assert stat.S_IMODE(os.stat(pub).st_mode) == 0o2750 and stat.S_IMODE(os.stat(priv).st_mode) == 0o700
    # The front notices a swapped public/ within a second.
    assert wait_for(lambda: get(port, "blog.test.berth") == (200, V1), timeout=5)
    assert get(port, "blog.test.berth", "/css/site.css") == (200, CSS)
    assert get(port, "blog.test.berth", "/new.html")[0] == 404
    no_debris(blog)
    # The settings were not touched, the snapshot is still there, both are recorded.
    assert snapshot_files(blog) == [name]
    events = api(daemon, "GET", "/api/v1/events?target=blog")[1]
    actions = [e["action"] for e in events["events"]]
    assert "site.archive" in actions and "site.restore" in actions, actions


def test_restore_from_a_file_into_another_site(daemon, blog, tmp_path):
    out = tmp_path / "blog.tar.zst"
    r = daemon.berth("site", "archive", "blog", "--output", out)
    assert r.returncode == 0, r
    assert snapshot_files(blog) == [], "a snapshot sent to the client is not kept"
    other = daemon.ok("site", "create", "copy")
    r = daemon.berth("site", "restore", "copy", "--file", out)
    assert r.returncode == 0, r
    pub = os.path.join(other["dir"], "public")
    assert open(os.path.join(pub, "index.html"), "rb").read() == V1
    secret = os.path.join(other["dir"], "private", "conf", "secret.env")
    assert open(secret, "rb").read() == SECRET
    st = os.lstat(secret)
    # The new site's owners, not the archived ones.
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (other["uid"], other["uid"], 0o640)
    assert os.lstat(os.path.join(pub, "index.html")).st_uid == other["uid"]
    assert get(daemon.http_port(), "copy.test.berth") == (200, V1)


# ---- list, keep, download, delete, bad names ----

def test_list_newest_first_keep_download_and_delete(daemon, blog, tmp_path):
    made = [archive(daemon)["name"] for _ in range(3)]
    assert len(set(made)) == 3, made
    listed = daemon.ok("site", "archives", "blog")["archives"]
    assert [a["name"] for a in listed] == made[::-1]
    assert all(a["size"] == os.stat(os.path.join(backups(blog), a["name"])).st_size for a in listed)
    r = daemon.berth("site", "archives", "blog")
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:3] == ["NAME", "SIZE", "DATE"], r
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == made[::-1]

    kept = archive(daemon, "blog", "--keep", "2")
    assert sorted(kept["pruned"]) == sorted(made[:2])
    assert snapshot_files(blog) == sorted([made[2], kept["name"]])
    assert [a["name"] for a in daemon.ok("site", "archives", "blog")["archives"]] == [kept["name"], made[2]]

    out = tmp_path / "down.tar.zst"
    r = daemon.berth("site", "archives", "blog", "--download", made[2], "--output", out)
    assert r.returncode == 0, r
    assert out.read_bytes() == open(os.path.join(backups(blog), made[2]), "rb").read()
    # To stdout, byte for byte.
    raw = subprocess.run([str(daemon.argv()[0]).replace("berthd", "berth"), "--socket", str(daemon.socket),
                          "site", "archives", "blog", "--download", made[2], "--output", "-"],
                         capture_output=True, check=True).stdout
    assert raw == out.read_bytes()

    r = daemon.berth("site", "archives", "blog", "--delete", made[2])
    assert r.returncode == 0, r
    assert snapshot_files(blog) == [kept["name"]]
    r = daemon.berth("site", "archives", "blog", "--delete", made[2])
    assert r.returncode == 1 and "no snapshot named" in r.stderr, r


@pytest.mark.parametrize("bad", ["../x", "../../berth.db", "blog-20201010-101010.tar.zst/../../x", "x/y"])
def test_bad_snapshot_names_are_refused(daemon, blog, bad):
    for argv in [("site", "restore", "blog", bad), ("site", "archives", "blog", "--delete", bad),
                 ("site", "archives", "blog", "--download", bad)]:
        r = daemon.berth(*argv)
        assert r.returncode == 1 and "invalid snapshot name" in r.stderr, (argv, r)


def test_bad_and_unknown_names_over_the_api(daemon, blog):
    archive(daemon)
    for path in ["/api/v1/sites/blog/archives/..", "/api/v1/sites/blog/archives/..%2F..%2Fberth.db",
                 "/api/v1/sites/blog/archives/%2Fetc%2Fpasswd", "/api/v1/sites/blog/archives/x%00.tar.zst",
                 "/api/v1/sites/blog/archives/backups"]:
        status, body = api(daemon, "GET", path)
        assert status in (400, 404) and "error" in body, (path, status, body)
        status, body = api(daemon, "DELETE", path)
        assert status in (400, 404), (path, status, body)
    status, body = api(daemon, "POST", "/api/v1/sites/blog/restore", {"snapshot": "../../berth.db"})
    assert status == 400 and "invalid snapshot name" in body["error"]["message"], body
    unknown = "blog-20201010-101010.tar.zst"
    r = daemon.berth("site", "restore", "blog", unknown)
    assert r.returncode == 1 and f'no snapshot named "{unknown}"' in r.stderr, r
    assert len(snapshot_files(blog)) == 1


# ---- hostile restores ----

def tinfo(name, kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = 1600000000
    return info


def hostile_tar(path, extra):
    """A snapshot-shaped tar (public/, private/, berth-site.json) with extra entries."""
    with tarfile.open(path, "w:gz") as t:
        for name in ["public/", "private/"]:
            t.addfile(tinfo(name, tarfile.DIRTYPE, mode=0o755))
        data = b"<h1>evil</h1>"
        info = tinfo("public/index.html")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        for info, data in extra:
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    return path


def test_hostile_snapshots_are_refused_and_change_nothing(daemon, blog, tmp_path):
    pub, priv = os.path.join(blog["dir"], "public"), os.path.join(blog["dir"], "private")
    before_pub, before_priv = tree(pub), tree(priv)
    cases = [
        ("traversal", [(tinfo("public/../../../x"), b"x")], "climbs out of the site"),
        ("absolute", [(tinfo("/tmp/berth-archive-test-x"), b"x")], "absolute"),
        ("symlink out", [(tinfo("public/out", tarfile.SYMTYPE, "../../../../etc/passwd"), None)], "symlink"),
        ("link to private", [(tinfo("public/peek", tarfile.SYMTYPE, "../private/conf/secret.env"), None)],
         "climbs out of the site"),
        ("link at top", [(tinfo("state", tarfile.SYMTYPE, "public"), None)], "not a berth snapshot"),
        ("device", [(tinfo("private/null", tarfile.CHRTYPE), None)], "device"),
    ]
    failures = []
    for ident, extra, message in cases:
        path = hostile_tar(tmp_path / f"{ident.replace(' ', '-')}.tar.gz", extra)
        r = daemon.berth("site", "restore", "blog", "--file", path)
        if r.returncode != 1 or message not in r.stderr or not r.stderr.startswith("berth: "):
            failures.append(f"{ident}: {r!r}")
        assert tree(pub) == before_pub, ident
        assert tree(priv) == before_priv, ident
        no_debris(blog)
    assert not failures, "\n".join(failures)
    assert not os.path.exists("/tmp/berth-archive-test-x")
    # Not a snapshot: a plain upload-style archive, and garbage.
    r = daemon.berth("site", "restore", "blog", "--file", write_zip(tmp_path / "plain.zip", [("index.html", V2)]))
    assert r.returncode == 1 and "not a berth snapshot" in r.stderr, r
    (tmp_path / "junk.tar.zst").write_bytes(os.urandom(4096))
    r = daemon.berth("site", "restore", "blog", "--file", tmp_path / "junk.tar.zst")
    assert r.returncode == 1, r
    assert tree(pub) == before_pub and tree(priv) == before_priv
    # A zip bomb is refused as an upload would be.
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("public/", b"")
        z.writestr("private/", b"")
        z.writestr("public/zeros.bin", b"\0" * (64 << 20))
    r = daemon.berth("site", "restore", "blog", "--file", bomb)
    assert r.returncode == 1 and "zip bomb" in r.stderr, r
    assert tree(pub) == before_pub and tree(priv) == before_priv
    no_debris(blog)


# ---- a full disk ----

def test_full_disk_during_archive_leaves_no_partial_snapshot(daemon, blog):
    bk = backups(blog)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=256k,mode=0750,uid=0,gid={blog['uid']}", "berth-test",
                    bk], check=True)
    try:
        first = archive(daemon)["name"]
        kept = open(os.path.join(bk, first), "rb").read()
        used = shutil.disk_usage(bk).used
        # Incompressible, larger than the file system.
        with open(os.path.join(blog["dir"], "public", "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        r = daemon.berth("site", "archive", "blog")
        assert r.returncode == 1, r
        assert "disk is full" in r.stderr and r.stderr.startswith("berth: "), r.stderr
        assert os.listdir(bk) == [first]
        assert open(os.path.join(bk, first), "rb").read() == kept
        # No hidden half file holds the space either.
        assert shutil.disk_usage(bk).used == used
        assert [a["name"] for a in daemon.ok("site", "archives", "blog")["archives"]] == [first]
        # Once there is room again, archiving works.
        os.unlink(os.path.join(blog["dir"], "public", "big.bin"))
        assert archive(daemon)["name"] != first
    finally:
        subprocess.run(["umount", bk], check=True)


# ---- who may ----

def test_another_user_cannot_archive_list_download_or_restore(daemon, tmp_path):
    for user in ["alice", "bob"]:
        add_user(daemon, user)
    alice, bob = Browser(daemon), Browser(daemon)
    assert alice.login("alice").status == 200 and bob.login("bob").status == 200
    assert alice.request("POST", "/api/v1/sites", {"name": "alices"}).status == 201
    made = alice.request("POST", "/api/v1/sites/alices/archives", {})
    assert made.status == 200, made
    name = made.json["name"]
    assert [a["name"] for a in alice.request("GET", "/api/v1/sites/alices/archives").json["archives"]] == [name]
    got = alice.request("GET", f"/api/v1/sites/alices/archives/{name}")
    assert got.status == 200 and got.raw[:4] == b"\x28\xb5\x2f\xfd", got   # zstd magic

    for method, path, body in [
            ("POST", "/api/v1/sites/alices/archives", {}),
            ("GET", "/api/v1/sites/alices/archives", None),
            ("GET", f"/api/v1/sites/alices/archives/{name}", None),
            ("DELETE", f"/api/v1/sites/alices/archives/{name}", None),
            ("POST", "/api/v1/sites/alices/restore", {"snapshot": name}),
            ("PUT", "/api/v1/sites/alices/restore", got.raw)]:
        a = bob.request(method, path, body)
        assert a.status == 404, (method, path, a)
    info = daemon.ok("site", "show", "alices")
    assert os.listdir(backups(info)) == [name]
    # The owner restores through the same socket, from the file as well.
    a = alice.request("PUT", "/api/v1/sites/alices/restore", got.raw)
    assert a.status == 200, a
    a = alice.request("POST", "/api/v1/sites/alices/restore", {"snapshot": name})
    assert a.status == 200, a


# ---- settings ----

def test_restore_with_settings_brings_back_limits_and_domains(daemon, tmp_path):
    daemon.ok("site", "create", "shop", "--memory", "256M", "--pids", "64", "--domain", "shop.example.com",
              "--io-write", "5M")
    name = archive(daemon, "shop")["name"]
    daemon.ok("site", "set", "shop", "--memory", "512M", "--pids", "100", "--no-domain", "shop.example.com",
              "--domain", "other.example.org", "--io-write", "unlimited")
    # Without --settings the settings stay as they are now.
    r = daemon.berth("site", "restore", "shop", name)
    assert r.returncode == 0, r
    now = daemon.ok("site", "show", "shop")
    assert now["limits"]["memory_bytes"] == 512 << 20 and now["domains"] == ["other.example.org"]

    r = daemon.berth("site", "restore", "shop", name, "--settings")
    assert r.returncode == 0 and "with its settings" in r.stdout, r
    back = daemon.ok("site", "show", "shop")
    assert back["limits"]["memory_bytes"] == 256 << 20
    assert back["limits"]["pids"] == 64
    assert back["limits"]["io_write_bps"] == 5 << 20
    assert back["domains"] == ["shop.example.com"]

    # A snapshot whose settings would break the rules changes nothing at all.
    out = tmp_path / "shop.tar.zst"
    assert daemon.berth("site", "archive", "shop", "--output", out).returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", out, "-C", work], check=True)
    meta = json.loads((work / "berth-site.json").read_text())
    meta["settings"]["type"] = "rocket"
    (work / "berth-site.json").write_text(json.dumps(meta))
    pub_file = work / "public" / "marker.html"
    pub_file.write_bytes(b"should not land")
    bad = tmp_path / "bad.tar.gz"
    subprocess.run(["tar", "-czf", bad, "-C", work, "berth-site.json", "public", "private"], check=True)
    r = daemon.berth("site", "restore", "shop", "--file", bad, "--settings")
    assert r.returncode == 1 and '"type"' in r.stderr, r
    assert not os.path.exists(os.path.join(back["dir"], "public", "marker.html"))
    assert daemon.ok("site", "show", "shop")["limits"]["memory_bytes"] == 256 << 20


# ---- a running app ----

def test_restore_restarts_a_running_app_site(daemon):
    from conftest import require
    from test_lifecycle import http_get, make_app, wait_state
    require(os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup"), "site sandboxes need root and cgroups")
    make_app(daemon, "svc", always_on=True)
    pid = wait_state(daemon, "svc", "running")["runtime"]["pid"]
    name = archive(daemon, "svc")["name"]
    r = daemon.berth("site", "restore", "svc", name, json_out=True)
    assert r.returncode == 0, r
    assert r.json()["restarted"] is True, r.json()
    assert wait_for(lambda: daemon.ok("site", "show", "svc")["runtime"]["pid"] not in (None, pid), timeout=10)
    # The restored program (private/app.py) runs and answers.
    assert wait_for(lambda: http_get(daemon, "svc")[0] == 200, timeout=10)


# ---- berthd goes on while a snapshot is written ----

def test_berthd_answers_while_a_big_snapshot_is_written_and_a_gone_client_cancels_it(daemon, blog, tmp_path):
    # 16 GiB of holes: minutes of zeros to read and compress, and no disk used.
    big = os.path.join(blog["dir"], "public", "sparse.bin")
    with open(big, "wb") as f:
        f.truncate(16 << 30)
    cli = str(daemon.argv()[0]).replace("berthd", "berth")
    slow = subprocess.Popen([cli, "--socket", str(daemon.socket), "site", "archive", "blog"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The job runs once a restore is refused as busy (an unknown name is a
        # probe that changes nothing either way).
        probe = ("site", "restore", "blog", "blog-20201010-101010.tar.zst")
        if not wait_for(lambda: "being made" in daemon.berth(*probe).stderr, timeout=5):
            slow.kill()
            raise AssertionError(f"no snapshot job seen: {slow.communicate()} {daemon.berth(*probe)!r}")
        started = time.monotonic()
        assert daemon.ok("site", "show", "blog")["name"] == "blog"
        assert time.monotonic() - started < 2, "berthd was blocked by the snapshot"
        r = daemon.berth("site", "archive", "blog")
        assert r.returncode == 1 and "being made" in r.stderr, r
        # Nor may its trees be replaced or removed under the writer.
        r = daemon.berth("site", "upload", "blog", write_zip(tmp_path / "v2.zip", [("index.html", V2)]))
        assert r.returncode == 1 and "being made" in r.stderr, r
        r = daemon.berth("site", "rm", "blog")
        assert r.returncode == 1 and "being made" in r.stderr, r
        assert slow.poll() is None, "the snapshot was written too fast to show anything"
    finally:
        slow.kill()
        slow.wait()
    # The client went away: the snapshot is abandoned, nothing is kept, and the site
    # can be archived again.
    os.unlink(big)
    assert wait_for(lambda: daemon.berth("site", "archive", "blog").returncode == 0, timeout=10)
    assert len(snapshot_files(blog)) == 1


# ---- restores run in a child of berthd ----

def children(daemon):
    pid = daemon.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def restore_in_background(daemon, *args):
    from conftest import BERTH
    return subprocess.Popen([str(BERTH), "--socket", str(daemon.socket), "site", "restore", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read(info, *path):
    with open(os.path.join(info["dir"], *path), "rb") as f:
        return f.read()


def shop_with_two_versions(d, tmp_path):
    """A site archived at V1 (memory 256M, a private secret) then changed to V2."""
    info = d.ok("site", "create", "shop", "--memory", "256M")
    assert d.berth("site", "upload", "shop", write_zip(tmp_path / "v1.zip", [("index.html", V1)])).returncode == 0
    secret = os.path.join(info["dir"], "private", "secret.env")
    with open(secret, "wb") as f:
        f.write(b"v1 secret\n")
    name = archive(d, "shop")["name"]
    d.ok("site", "set", "shop", "--memory", "512M")
    assert d.berth("site", "upload", "shop", write_zip(tmp_path / "v2.zip", [("index.html", V2)])).returncode == 0
    with open(secret, "wb") as f:
        f.write(b"v2 secret\n")
    return info, name


def test_berthd_answers_while_a_restore_runs_and_the_restore_outlives_its_client(daemon_factory, tmp_path):
    gate = tmp_path / "gate"
    d = daemon_factory().start(env={"BERTH_TEST_RESTORE_GATE": str(gate)})
    info, name = shop_with_two_versions(d, tmp_path)
    before = children(d)
    slow = restore_in_background(d, "shop", name)
    try:
        restorer = wait_for(lambda: children(d) - before, timeout=10)
        assert restorer, "no process restores the site"
        # Held at the gate: berthd answers all the same, and keeps the site's trees
        # from being replaced, archived or removed under the restore.
        started = time.monotonic()
        assert d.ok("site", "show", "shop")["name"] == "shop"
        assert time.monotonic() - started < 5, "berthd was blocked by the restore"
        r = d.berth("site", "rm", "shop")
        assert r.returncode == 1, r
        assert r.stderr.strip() == "berth: site shop is being restored: wait for it to end, then remove it", r
        r = d.berth("site", "upload", "shop", tmp_path / "v1.zip")
        assert r.returncode == 1 and "being restored" in r.stderr, r
        r = d.berth("site", "archive", "shop")
        assert r.returncode == 1 and "being restored" in r.stderr, r
        r = d.berth("site", "restore", "shop", name)
        assert r.returncode == 1 and "being restored already" in r.stderr, r
        assert slow.poll() is None
    finally:
        # The client goes away: the restore goes on to its end.
        slow.kill()
        slow.wait()
    assert read(info, "public", "index.html") == V2
    gate.touch()
    assert wait_for(lambda: read(info, "public", "index.html") == V1, timeout=20), "the restore stopped"
    assert wait_for(lambda: not (children(d) & restorer), timeout=20), "the restore's process was not reaped"
    assert read(info, "private", "secret.env") == b"v1 secret\n"
    assert "its client went away; the restore goes on" in d.log()
    no_debris(info)
    assert not os.path.exists(os.path.join(info["dir"], ".restore-journal"))
    # Nothing is busy any more.
    assert d.berth("site", "restore", "shop", name).returncode == 0


def wait_between_the_swaps(info):
    """The restore holds after swapping public/, before private/: the moment a kill
    would leave a new public/ beside the old private/ without the journal."""
    journal = os.path.join(info["dir"], ".restore-journal")
    assert wait_for(lambda: os.path.exists(journal) and read(info, "public", "index.html") == V1, timeout=20)
    assert read(info, "private", "secret.env") == b"v2 secret\n"
    return journal


def test_a_restore_killed_between_its_swaps_is_finished_by_berthd(daemon_factory, tmp_path):
    d = daemon_factory().start(env={"BERTH_TEST_RESTORE_SWAP_GATE": str(tmp_path / "never")})
    info, name = shop_with_two_versions(d, tmp_path)
    before = children(d)
    slow = restore_in_background(d, "shop", name, "--settings")
    try:
        journal = wait_between_the_swaps(info)
        for pid in children(d) - before:
            os.kill(pid, 9)
        out, err = slow.communicate(timeout=30)
    finally:
        slow.kill()
    assert slow.returncode == 0, (out, err)
    assert out.strip() == "restored site shop, with its settings", out
    assert read(info, "public", "index.html") == V1
    assert read(info, "private", "secret.env") == b"v1 secret\n"
    assert d.ok("site", "show", "shop")["limits"]["memory_bytes"] == 256 << 20
    assert not os.path.exists(journal)
    assert "the restore process ended during the swap; berthd finished it" in d.log()
    assert get(d.http_port(), "shop.test.berth")[0] == 200


def test_a_berthd_stopped_between_the_swaps_finishes_the_restore_at_its_next_start(daemon_factory, tmp_path):
    d = daemon_factory().start(env={"BERTH_TEST_RESTORE_SWAP_GATE": str(tmp_path / "never")})
    info, name = shop_with_two_versions(d, tmp_path)
    slow = restore_in_background(d, "shop", name, "--settings")
    try:
        journal = wait_between_the_swaps(info)
        d.stop()
        slow.communicate(timeout=30)
    finally:
        slow.kill()
    assert slow.returncode == 1
    # Stopped: a new public/ beside the old private/, and the journal that says so.
    assert os.path.exists(journal)
    assert read(info, "private", "secret.env") == b"v2 secret\n"
    d.start()
    assert read(info, "public", "index.html") == V1
    assert read(info, "private", "secret.env") == b"v1 secret\n"
    assert d.ok("site", "show", "shop")["limits"]["memory_bytes"] == 256 << 20
    assert not os.path.exists(journal)
    no_debris(info)
    assert "site shop: finished an interrupted restore (files and settings)" in d.log()


def test_a_damaged_restore_journal_is_kept_and_changes_nothing(daemon_factory, tmp_path):
    d = daemon_factory().start()
    info = d.ok("site", "create", "shop")
    journal = os.path.join(info["dir"], ".restore-journal")
    with open(journal, "w") as f:
        f.write("berth-restore 1\nstaging ../../etc\ndir public 1 2\n")
    d.stop()
    d.start()
    assert "its journal .restore-journal is kept for an operator" in d.log()
    assert os.path.exists(journal)
    # While it is there no restore may start: it would hide the earlier one.
    name = archive(d, "shop")["name"]
    r = d.berth("site", "restore", "shop", name)
    assert r.returncode == 1 and "an earlier restore of this site was interrupted" in r.stderr, r


# ---- a removed site's snapshots ----

def test_a_removed_site_keeps_its_snapshots_and_comes_back_from_them(daemon, blog, tmp_path):
    name = archive(daemon)["name"]
    r = daemon.berth("site", "rm", "blog")
    assert r.returncode == 0, r
    lines = r.stdout.strip().split("\n")
    assert lines[0] == "removed site blog"
    kept = lines[1].split("its snapshots are kept in ", 1)[1].split(" ", 1)[0]
    removed = daemon.state_dir / "removed"
    assert os.path.dirname(kept) == str(removed)
    assert os.path.basename(kept).startswith("blog-")
    assert os.listdir(kept) == [name]
    st = os.stat(removed)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    assert not os.path.exists(blog["dir"])

    # Brought back as the CLI says.
    daemon.ok("site", "create", "blog")
    r = daemon.berth("site", "restore", "blog", "--file", os.path.join(kept, name), "--settings")
    assert r.returncode == 0, r
    assert get(daemon.http_port(), "blog.test.berth") == (200, V1)

    # --purge takes them with the site; a site without snapshots keeps nothing.
    archive(daemon)
    r = daemon.berth("site", "rm", "blog", "--purge", json_out=True)
    assert r.returncode == 0, r
    assert r.json() == {"removed": "blog", "snapshots_kept_in": None}
    assert os.listdir(removed) == [os.path.basename(kept)]
    daemon.ok("site", "create", "blog")
    r = daemon.berth("site", "rm", "blog")
    assert r.returncode == 0 and r.stdout == "removed site blog\n", r
    r = daemon.berth("site", "rm", "blog", "--purge", "--memory", "1G")
    assert r.returncode == 2 and "--memory does not apply to 'site rm'" in r.stderr, r


def test_snapshots_survive_a_crash_in_the_middle_of_a_removal(daemon_factory):
    d = daemon_factory().start()
    d.ok("site", "create", "blog")
    name = archive(d)["name"]
    d.stop()
    d.start(env={"BERTH_TEST_CRASH": "site-rm:stored"})
    assert d.berth("site", "rm", "blog", "--purge").returncode == 1
    assert d.proc.wait(timeout=20) == -9
    d.proc = None
    # The row is gone, the tree is an orphan: the next start removes it, but keeps
    # the snapshots (a crash may not lose what a removal would have kept).
    d.start()
    removed = d.state_dir / "removed"
    [kept] = os.listdir(removed)
    assert kept.startswith("blog-") and os.listdir(removed / kept) == [name]
    assert not (d.state_dir / "sites" / "blog").exists()
    assert f"removed site blog: its snapshots are kept in {removed / kept}" in d.log()
