"""Uploads and restores are parsed and written by an unpacker process that runs as
the site, not as root: a real berthd, the real CLI, and the real unpacker's
/proc/PID/status read while a test gate holds it. What a user sees: every file
the site's, with the front's group in public/ and the site's in private/; what an
operator sees: an unpacker with the site's ids, no capabilities, no_new_privs and
a seccomp filter, and a clear error (the site untouched) when none can start."""
import os
import stat
import tarfile
import threading

from conftest import wait_for
from test_upload import (V1, make_site, no_debris, public, tinfo, upload, upload_in_background, write_tar,
                         write_zip)


def kids(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except FileNotFoundError:
        return set()


def grandchildren(daemon):
    """berthd's children's children: the unpackers its upload and restore children fork."""
    out = set()
    for child in kids(daemon.proc.pid):
        out |= kids(child)
    return out


def at_gate(daemon):
    """The unpackers that are done setting up (seccomp is their last step before the
    gate): one just forked is still root for a moment."""
    out = set()
    for pid in grandchildren(daemon):
        try:
            if status_of(pid).get("Seccomp") == "2":
                out.add(pid)
        except FileNotFoundError:
            pass
    return out


def status_of(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def assert_confined(pid, uid, site_dir):
    """The unpacker's credentials, root and fds as the kernel holds them."""
    st = status_of(pid)
    assert st["Uid"].split() == [str(uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(uid)] * 4, st["Gid"]
    assert st["Groups"] == "", st["Groups"]
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]:
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"   # a filter
    # Not dumpable: /proc/PID/fd is root's, so the site's own processes cannot look in.
    assert os.stat(f"/proc/{pid}/fd").st_uid == 0
    # Its root is the staging directory (root's, 0700): nothing of the host by path.
    root = os.readlink(f"/proc/{pid}/root")
    assert os.path.dirname(root) == os.path.realpath(site_dir) and \
        os.path.basename(root).startswith(".upload-"), root
    st_root = os.stat(root)
    assert (st_root.st_uid, stat.S_IMODE(st_root.st_mode)) == (0, 0o700)
    # stdin/out/err (sanitizer reports), the tree, the archive, the report pipe,
    # and the test gate's directory: no socket, nothing of berthd's.
    fds = {int(n): os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    assert len(fds) <= 7, fds
    assert not any(t.startswith("socket:") for t in fds.values()), fds
    assert os.path.join(root, "tree") in fds.values(), fds


def walk(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            yield os.path.relpath(p, root), os.lstat(p)


# ---- what a user sees ----

def test_uploaded_files_are_the_sites_with_the_fronts_group(daemon, tmp_path):
    info = make_site(daemon)
    uid = info["uid"]
    archive = write_tar(tmp_path / "site.tar.gz", [
        (tinfo("w/", tarfile.DIRTYPE, mode=0o777), None),
        (tinfo("w/index.html", mode=0o6666), b"<h1>hi</h1>"),   # set-id bits dropped
        (tinfo("w/a/b/c/deep.txt"), b"deep"),
        (tinfo("w/run.sh", mode=0o755), b"#!/bin/sh\n"),
        (tinfo("w/home.html", tarfile.SYMTYPE, linkname="index.html"), None),
        (tinfo("w/copy.html", tarfile.LNKTYPE, linkname="w/index.html"), None),
    ], mode="w:gz")
    r = upload(daemon, "blog", archive)
    assert r.returncode == 0, r
    pub = public(info)
    pub_st = os.stat(pub)
    front_gid = pub_st.st_gid
    assert front_gid != uid
    assert (pub_st.st_uid, stat.S_IMODE(pub_st.st_mode)) == (uid, 0o2750)
    seen = {}
    for rel, st in walk(pub):
        assert (st.st_uid, st.st_gid) == (uid, front_gid), rel
        seen[rel] = stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else "link"
    assert seen == {"index.html": 0o640, "copy.html": 0o640, "run.sh": 0o750, "home.html": "link",
                    "a": 0o2750, "a/b": 0o2750, "a/b/c": 0o2750, "a/b/c/deep.txt": 0o640}
    no_debris(info)


def test_restored_files_are_the_sites_with_each_folders_group(daemon, tmp_path):
    info = make_site(daemon)
    uid = info["uid"]
    assert upload(daemon, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1), ("css/a.css", b"a")]))\
        .returncode == 0
    priv = os.path.join(info["dir"], "private")
    os.makedirs(os.path.join(priv, "conf"))
    with open(os.path.join(priv, "conf", "secret.env"), "wb") as f:
        f.write(b"x=1\n")
    for p in [os.path.join(priv, "conf"), os.path.join(priv, "conf", "secret.env")]:
        os.chown(p, uid, uid)
    r = daemon.berth("site", "archive", "blog")
    assert r.returncode == 0, r
    name = r.stdout.split()[0]
    # Lose both folders' content, then bring it back.
    os.unlink(os.path.join(public(info), "index.html"))
    os.unlink(os.path.join(priv, "conf", "secret.env"))
    r = daemon.berth("site", "restore", "blog", name)
    assert r.returncode == 0, r
    front_gid = os.stat(public(info)).st_gid
    pub_seen = {rel: (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) for rel, st in walk(public(info))}
    assert pub_seen == {"index.html": (uid, front_gid, 0o640), "css": (uid, front_gid, 0o2750),
                        "css/a.css": (uid, front_gid, 0o640)}
    priv_seen = {rel: (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) for rel, st in walk(priv)}
    assert priv_seen == {"conf": (uid, uid, 0o2750), "conf/secret.env": (uid, uid, 0o640)}
    assert (os.stat(priv).st_uid, os.stat(priv).st_gid, stat.S_IMODE(os.stat(priv).st_mode)) == (uid, uid, 0o700)
    pub_st = os.stat(public(info))
    assert (pub_st.st_uid, stat.S_IMODE(pub_st.st_mode)) == (uid, 0o2750)
    no_debris(info)


# ---- what an operator sees ----

def test_the_unpacker_of_an_upload_runs_as_the_site_without_privileges(daemon_factory, tmp_path):
    gate = tmp_path / "gate"
    d = daemon_factory().start(env={"BERTH_TEST_UNPACKER_GATE": str(gate)})
    gate.touch()
    info = make_site(d)
    assert upload(d, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1)])).returncode == 0
    gate.unlink()

    v2 = write_zip(tmp_path / "v2.zip", [("index.html", b"v2\n")])
    thread, result = upload_in_background(d, "blog", v2)
    unpackers = wait_for(lambda: at_gate(d), timeout=10)
    assert unpackers and len(unpackers) == 1, unpackers
    pid = unpackers.pop()
    assert_confined(pid, info["uid"], info["dir"])
    gate.touch()
    thread.join(timeout=30)
    assert result and result[0].returncode == 0, result
    assert open(os.path.join(public(info), "index.html"), "rb").read() == b"v2\n"
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")), "the unpacker was not reaped"
    no_debris(info)


def test_the_unpacker_of_a_restore_runs_as_the_site_without_privileges(daemon_factory, tmp_path):
    gate = tmp_path / "gate"
    d = daemon_factory().start(env={"BERTH_TEST_UNPACKER_GATE": str(gate)})
    gate.touch()
    info = make_site(d)
    assert upload(d, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1)])).returncode == 0
    r = d.berth("site", "archive", "blog")
    assert r.returncode == 0, r
    name = r.stdout.split()[0]
    gate.unlink()

    result = []
    thread = threading.Thread(target=lambda: result.append(d.berth("site", "restore", "blog", name)))
    thread.start()
    unpackers = wait_for(lambda: at_gate(d), timeout=10)
    assert unpackers and len(unpackers) == 1, unpackers
    pid = unpackers.pop()
    assert_confined(pid, info["uid"], info["dir"])
    gate.touch()
    thread.join(timeout=30)
    assert result and result[0].returncode == 0, result
    assert open(os.path.join(public(info), "index.html"), "rb").read() == V1
    no_debris(info)


def test_an_unpacker_that_cannot_start_fails_the_upload_and_the_restore_clearly(daemon_factory, tmp_path):
    d = daemon_factory().start()
    info = make_site(d)
    v1 = write_zip(tmp_path / "v1.zip", [("index.html", V1)])
    assert upload(d, "blog", v1).returncode == 0
    r = d.berth("site", "archive", "blog")
    assert r.returncode == 0, r
    name = r.stdout.split()[0]
    d.stop()

    d.start(env={"BERTH_TEST_UNPACKER_FORK_FAIL": "1"})
    r = upload(d, "blog", write_zip(tmp_path / "v2.zip", [("index.html", b"v2\n"), ("new.html", b"n")]))
    assert r.returncode == 1
    assert r.stderr.strip() == "berth: cannot start the unpacking process: Resource temporarily unavailable", r
    r = d.berth("site", "restore", "blog", name)
    assert r.returncode == 1
    assert r.stderr.strip() == ("berth: cannot restore site blog: cannot start the unpacking process: "
                                "Resource temporarily unavailable"), r
    assert sorted(os.listdir(public(info))) == ["index.html"]
    assert open(os.path.join(public(info), "index.html"), "rb").read() == V1
    no_debris(info)
    d.stop()

    # berthd's own fork for the upload fails: no unpacking in berthd's loop instead.
    d.start(env={"BERTH_TEST_UPLOAD_FORK_FAIL": "1"})
    r = upload(d, "blog", write_zip(tmp_path / "v3.zip", [("index.html", b"v3\n")]))
    assert r.returncode == 1
    assert r.stderr.strip() == ("berth: cannot start the process that unpacks the upload: Resource temporarily "
                                "unavailable; the site keeps its content, try again"), r
    assert open(os.path.join(public(info), "index.html"), "rb").read() == V1
    assert "cannot start a process to unpack it" in d.log()
    no_debris(info)


def test_a_hostile_archive_is_still_refused_by_the_unpacker(daemon, tmp_path):
    """The classic link-then-write-through-it, an absolute link, and a device: each
    refused with its message, and nothing outside the site written."""
    info = make_site(daemon)
    assert upload(daemon, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1)])).returncode == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    cases = [
        ([(tinfo("a", tarfile.SYMTYPE, linkname="../../../../../../" + str(outside)), None),
          (tinfo("a/pwned"), b"x")], "climbs out of the site"),
        ([(tinfo("l", tarfile.SYMTYPE, linkname=str(outside)), None)], "points to the absolute path"),
        ([(tinfo("dev", tarfile.CHRTYPE), None)], "is a device"),
    ]
    for i, (members, why) in enumerate(cases):
        r = upload(daemon, "blog", write_tar(tmp_path / f"h{i}.tar", members))
        assert r.returncode == 1 and why in r.stderr, (why, r)
    assert os.listdir(outside) == []
    assert sorted(os.listdir(public(info))) == ["index.html"]
    no_debris(info)
