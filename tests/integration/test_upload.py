"""berth site upload: archives built here with zipfile/tarfile, uploaded with the
real CLI to a real berthd, the result checked on disk (contents, owners, modes).
Every hostile shape must be refused with a message that says what is wrong, and
leave the content uploaded before it byte-identical, with no staging debris."""
import io
import json
import os
import socket
import time
import stat
import tarfile
import threading
import zipfile

import pytest

from conftest import wait_for

V1 = b"<!doctype html><h1>version one</h1>\n"


def make_site(daemon, name="blog"):
    info = daemon.ok("site", "create", name)
    return info


def site_dir(info):
    return info["dir"]


def public(info):
    return os.path.join(info["dir"], "public")


def write_zip(path, entries):
    """entries: (name, bytes) pairs; a name ending in / is a directory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name.endswith("/"):
                z.writestr(zipfile.ZipInfo(name), b"")
            else:
                info = zipfile.ZipInfo(name, date_time=(2020, 5, 17, 12, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, data)
    return path


def write_tar(path, members, mode="w"):
    """members: TarInfo objects with optional data (tuples (info, bytes))."""
    with tarfile.open(path, mode) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    return path


def tinfo(name, kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = 1600000000
    return info


def upload(daemon, name, path, **kw):
    return daemon.berth("site", "upload", name, path, **kw)


def no_debris(info):
    left = [n for n in os.listdir(site_dir(info)) if n.startswith(".upload-")]
    assert left == [], f"staging debris left: {left}"


@pytest.fixture
def site_v1(daemon, tmp_path):
    """A site whose public/ holds index.html (V1) from a first upload."""
    info = make_site(daemon)
    r = upload(daemon, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1)]))
    assert r.returncode == 0, r
    assert r.stdout.strip() == "uploaded 1 file (36 bytes) to site blog"
    with open(os.path.join(public(info), "index.html"), "rb") as f:
        assert f.read() == V1
    return info


def assert_v1_intact(info):
    with open(os.path.join(public(info), "index.html"), "rb") as f:
        assert f.read() == V1
    assert sorted(os.listdir(public(info))) == ["index.html"]
    no_debris(info)


# ---- what works ----

def test_zip_unwraps_single_top_folder_and_sets_owners(daemon, tmp_path):
    info = make_site(daemon)
    archive = write_zip(tmp_path / "site.zip", [
        ("mysite/", b""), ("mysite/index.html", b"<h1>hi</h1>"), ("mysite/css/site.css", b"body{}"),
    ])
    r = upload(daemon, "blog", archive, json_out=True)
    assert r.returncode == 0, r
    assert r.json() == {"site": "blog", "files": 2, "bytes": 17}
    pub = public(info)
    assert sorted(os.listdir(pub)) == ["css", "index.html"]
    assert open(os.path.join(pub, "index.html"), "rb").read() == b"<h1>hi</h1>"
    pub_st = os.stat(pub)
    assert pub_st.st_uid == info["uid"]
    assert stat.S_IMODE(pub_st.st_mode) == 0o2750
    for rel, mode in [("index.html", 0o640), ("css", 0o2750), ("css/site.css", 0o640)]:
        st = os.lstat(os.path.join(pub, rel))
        assert st.st_uid == info["uid"], rel
        assert st.st_gid == pub_st.st_gid, rel   # the front's group, as public/ has
        assert stat.S_IMODE(st.st_mode) == mode, rel
    no_debris(info)


def test_zip_from_macos_finder_unwraps_without_its_metadata(daemon, tmp_path):
    """Finder's Compress puts extended attributes in a __MACOSX/ folder beside the
    site's folder: it is not content, and must not stop the unwrapping."""
    info = make_site(daemon)
    archive = write_zip(tmp_path / "mysite.zip", [
        ("mysite/", b""), ("mysite/index.html", b"<h1>mac</h1>"),
        ("__MACOSX/", b""), ("__MACOSX/mysite/", b""), ("__MACOSX/mysite/._index.html", b"\0\5\26\7 xattrs"),
    ])
    r = upload(daemon, "blog", archive, json_out=True)
    assert r.returncode == 0, r
    assert r.json() == {"site": "blog", "files": 1, "bytes": 12}
    assert sorted(os.listdir(public(info))) == ["index.html"]
    no_debris(info)


def test_tar_gz_keeps_exec_bit_links_and_times(daemon, tmp_path):
    info = make_site(daemon)
    archive = write_tar(tmp_path / "site.tgz", [
        (tinfo("index.html"), b"tgz"),
        (tinfo("cgi/run.sh", mode=0o4755), b"#!/bin/sh\n"),
        (tinfo("home.html", tarfile.SYMTYPE, "index.html"), None),
        (tinfo("copy.html", tarfile.LNKTYPE, "index.html"), None),
    ], mode="w:gz")
    r = upload(daemon, "blog", archive)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "uploaded 3 files (13 bytes) to site blog"
    pub = public(info)
    st = os.stat(os.path.join(pub, "cgi/run.sh"))
    assert stat.S_IMODE(st.st_mode) == 0o750   # executable kept, setuid dropped
    assert os.readlink(os.path.join(pub, "home.html")) == "index.html"
    assert os.stat(os.path.join(pub, "index.html")).st_mtime == 1600000000
    assert os.stat(os.path.join(pub, "copy.html")).st_ino == os.stat(os.path.join(pub, "index.html")).st_ino


def test_folder_upload(daemon, tmp_path):
    info = make_site(daemon)
    folder = tmp_path / "www"
    (folder / "img").mkdir(parents=True)
    (folder / "index.html").write_bytes(b"from a folder")
    (folder / "img" / "logo.svg").write_bytes(b"<svg/>")
    (folder / "run").write_bytes(b"#!/bin/sh\n")
    os.chmod(folder / "run", 0o755)
    os.symlink("index.html", folder / "home.html")
    r = upload(daemon, "blog", str(folder) + "/")
    assert r.returncode == 0, r
    assert r.stdout.strip() == "uploaded 3 files (29 bytes) to site blog"
    pub = public(info)
    assert sorted(os.listdir(pub)) == ["home.html", "img", "index.html", "run"]
    assert open(os.path.join(pub, "img/logo.svg"), "rb").read() == b"<svg/>"
    assert stat.S_IMODE(os.stat(os.path.join(pub, "run")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.join(pub, "index.html")).st_mode) == 0o640
    assert os.readlink(os.path.join(pub, "home.html")) == "index.html"
    assert os.lstat(os.path.join(pub, "img")).st_uid == info["uid"]


def test_folder_upload_keeps_sparse_files_byte_identical(daemon, tmp_path):
    """A file with holes (a disk image, a database copied with cp --sparse) must
    arrive with its data where it was, not shifted into the holes."""
    info = make_site(daemon)
    folder = tmp_path / "www"
    folder.mkdir()
    with open(folder / "disk.img", "wb") as f:
        f.write(b"A" * 4096)
        f.seek(1 << 20)
        f.write(b"B" * 4096)
        f.truncate(2 << 20)   # and a hole at the end
    expected = (folder / "disk.img").read_bytes()
    r = upload(daemon, "blog", str(folder))
    assert r.returncode == 0, r
    assert open(os.path.join(public(info), "disk.img"), "rb").read() == expected


def test_folder_given_through_a_symlink(daemon, tmp_path):
    """berth site upload blog ~/www, where ~/www is a symlink to the real folder,
    uploads the folder's contents (as tar -H would), not an empty archive."""
    info = make_site(daemon)
    folder = tmp_path / "real-www"
    folder.mkdir()
    (folder / "index.html").write_bytes(b"through a link")
    os.symlink("index.html", folder / "home.html")
    os.symlink(folder, tmp_path / "www")
    r = upload(daemon, "blog", str(tmp_path / "www"))
    assert r.returncode == 0, r
    assert r.stdout.strip() == "uploaded 1 file (14 bytes) to site blog"
    pub = public(info)
    assert open(os.path.join(pub, "index.html"), "rb").read() == b"through a link"
    # Links inside the folder are still kept as links, never followed.
    assert os.readlink(os.path.join(pub, "home.html")) == "index.html"


def test_second_upload_replaces_the_first_completely(site_v1, daemon, tmp_path):
    archive = write_tar(tmp_path / "v2.tar", [(tinfo("new/page.html"), b"v2"), (tinfo("about.html"), b"a")])
    r = upload(daemon, "blog", archive)
    assert r.returncode == 0, r
    pub = public(site_v1)
    assert sorted(os.listdir(pub)) == ["about.html", "new"]
    assert not os.path.exists(os.path.join(pub, "index.html"))
    no_debris(site_v1)


def test_appended_tar_counts_what_is_on_disk(site_v1, daemon, tmp_path):
    """tar -r appends a newer copy of a file: the newer one wins, and the summary
    counts the one file there is, with its bytes."""
    archive = write_tar(tmp_path / "appended.tar", [(tinfo("index.html"), b"old version"),
                                                    (tinfo("index.html"), b"new")])
    r = upload(daemon, "blog", archive)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "uploaded 1 file (3 bytes) to site blog"
    assert open(os.path.join(public(site_v1), "index.html"), "rb").read() == b"new"


def test_upload_is_recorded_and_chunked_body_works(site_v1, daemon, tmp_path):
    """A raw chunked PUT, as a script or the panel might send it."""
    data = open(write_zip(tmp_path / "c.zip", [("a.html", b"chunked!")]), "rb").read()
    body = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 100]), data[i:i + 100]) for i in range(0, len(data), 100))
    body += b"0\r\n\r\n"
    answer = raw_request(daemon, b"PUT /api/v1/sites/blog/content HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"site": "blog", "files": 1, "bytes": 8}
    assert open(os.path.join(public(site_v1), "a.html"), "rb").read() == b"chunked!"
    events = json.loads(raw_request(daemon, b"GET /api/v1/events?target=blog HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n").split(b"\r\n\r\n", 1)[1])
    uploads = [e for e in events["events"] if e["action"] == "site.upload"]
    assert len(uploads) == 2
    detail = uploads[0]["detail"]
    assert (json.loads(detail) if isinstance(detail, str) else detail) == {"files": 1, "bytes": 8}


def test_a_site_takes_one_upload_at_a_time(site_v1, daemon, tmp_path):
    """Two uploads to one site at once would each hold up to the size limit on disk
    and the last to end would win unseen: the second is refused while the first's
    body is arriving, whichever socket each came on; another site is not held up,
    and the site takes uploads again once the first is over."""
    make_site(daemon, "other")
    data = open(write_zip(tmp_path / "v2.zip", [("index.html", b"v2\n")]), "rb").read()
    first = socket.socket(socket.AF_UNIX)
    first.connect(str(daemon.socket))
    first.sendall(b"PUT /api/v1/sites/blog/content HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(data) + data[:10])
    try:
        time.sleep(0.3)   # the head is read and the upload begun before the next one comes
        r = upload(daemon, "blog", tmp_path / "v2.zip")
        assert r.returncode == 1 and r.stderr.strip() == (
            "berth: another upload to site blog is in progress: wait for it to end, then try again"), r
        assert upload(daemon, "other", tmp_path / "v2.zip").returncode == 0
        first.sendall(data[10:])
        answer = b""
        while (b := first.recv(65536)):
            answer += b
        assert answer.startswith(b"HTTP/1.1 200 "), answer
    finally:
        first.close()
    assert open(os.path.join(public(site_v1), "index.html"), "rb").read() == b"v2\n"
    # a client that goes away half-way frees the site too
    gone = socket.socket(socket.AF_UNIX)
    gone.connect(str(daemon.socket))
    gone.sendall(b"PUT /api/v1/sites/blog/content HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nPK")
    time.sleep(0.3)
    gone.close()
    deadline = time.time() + 10
    while (r := upload(daemon, "blog", tmp_path / "v1.zip")).returncode != 0 and time.time() < deadline:
        time.sleep(0.1)
    assert r.returncode == 0, r
    assert_v1_intact(site_v1)


def raw_request(daemon, request):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(daemon.socket))
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


# ---- what is refused ----

def hostile_archives(tmp_path):
    """(id, path, message) for every hostile shape."""
    t = tmp_path
    return [
        ("absolute", write_tar(t / "abs.tar", [(tinfo("index.html"), b"x"), (tinfo("/etc/evil"), b"x")]),
         "entry '/etc/evil' has an absolute path"),
        ("dotdot", write_tar(t / "dd.tar", [(tinfo("a/../../x"), b"x")]),
         "entry 'a/../../x' climbs out of the site"),
        ("dotdot-zip", write_zip(t / "dd.zip", [("ok.html", b"x"), ("../evil.html", b"x")]),
         "entry '../evil.html' climbs out of the site"),
        ("symlink-absolute", write_tar(t / "sa.tar", [(tinfo("etc", tarfile.SYMTYPE, "/etc"), None)]),
         "symlink 'etc' points to the absolute path '/etc'"),
        ("symlink-climbs", write_tar(t / "sc.tar", [(tinfo("d/up", tarfile.SYMTYPE, "../../../outside"), None)]),
         "symlink 'd/up' -> '../../../outside' climbs out of the site"),
        ("symlink-chain", write_tar(t / "ch.tar", [(tinfo("index.html"), b"x"),
                                                     (tinfo("d/s", tarfile.SYMTYPE, ".."), None),
                                                     (tinfo("d/x", tarfile.SYMTYPE, "s/../.."), None)]),
         "symlink 'd/x' leads out of the site"),
        ("symlink-dangling-unwrapped", write_tar(t / "ud.tar", [
            (tinfo("top", tarfile.DIRTYPE, mode=0o755), None), (tinfo("top/index.html"), b"x"),
            (tinfo("top/x", tarfile.SYMTYPE, "nothere/../../private/key"), None)]),
         "symlink 'x' -> 'nothere/../../private/key' climbs out of the site"),
        ("too-deep", write_tar(t / "deep.tar", [(tinfo("d/" * 200 + "f"), b"x")]),
         "is nested more than 128 levels deep"),
        ("write-through-absolute", write_tar(t / "wa.tar", [(tinfo("a", tarfile.SYMTYPE, "/tmp/x"), None),
                                                              (tinfo("a/file"), b"pwned")]),
         "symlink 'a' points to the absolute path '/tmp/x'"),
        ("write-through", write_tar(t / "wt.tar", [(tinfo("real", tarfile.DIRTYPE, mode=0o755), None),
                                                     (tinfo("a", tarfile.SYMTYPE, "real"), None),
                                                     (tinfo("a/file"), b"pwned")]),
         "entry 'a/file' would be written through the symlink 'a'"),
        ("hardlink-out", write_tar(t / "hl.tar", [(tinfo("pw", tarfile.LNKTYPE, "/etc/passwd"), None)]),
         "hard link 'pw' points to '/etc/passwd', outside the site"),
        ("hardlink-missing", write_tar(t / "hm.tar", [(tinfo("pw", tarfile.LNKTYPE, "nothing.txt"), None)]),
         "hard link 'pw' points to 'nothing.txt', which is not a file the archive holds before it"),
        ("device", write_tar(t / "dev.tar", [(tinfo("null", tarfile.CHRTYPE), None)]),
         "entry 'null' is a device"),
        ("fifo", write_tar(t / "fifo.tar", [(tinfo("pipe", tarfile.FIFOTYPE), None)]),
         "entry 'pipe' is a fifo"),
        ("control-char", write_tar(t / "cc.tar", [(tinfo("bad\x1bname"), b"x")]),
         "entry 'bad?name' has a control character in its name"),
        ("retype", write_tar(t / "rt.tar", [(tinfo("x", tarfile.DIRTYPE, mode=0o755), None), (tinfo("x"), b"x")]),
         "entry 'x' appears twice, first as a directory, then as a file"),
        ("zip-bomb", write_zip(t / "bomb.zip", [("index.html", b"x"), ("zeros.bin", bytes(40 << 20))]),
         "refused as a likely zip bomb"),
        ("damaged", damaged_zip(t / "damaged.zip"), "entry 'index.html' is damaged"),
        ("sparse-map-bomb", sparse_map_bomb(t / "sparse.tgz"),
         "an entry's headers unpack to more than 4M"),
        ("not-an-archive", write_bytes(t / "page.html", b"<h1>just html</h1>" * 10),
         "not a zip or tar archive"),
    ]


def damaged_zip(path):
    """A stored zip with one byte of its file data changed: the CRC no longer matches."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("index.html", b"<h1>the real page</h1>")
    data = bytearray(path.read_bytes())
    at = data.index(b"real")
    data[at:at + 4] = b"fake"
    path.write_bytes(bytes(data))
    return path


def sparse_map_bomb(path, extents=2_000_000):
    """A tar.gz whose one entry is a GNU sparse file (pax format 1.0) with millions
    of one-byte extents: its map is text at the start of the entry's data, which
    libarchive turns into a node per extent while it reads the header."""
    sparse_map = b"%d\n" % extents + b"0\n1\n" * extents
    sparse_map += bytes(-len(sparse_map) % 512)
    data = sparse_map + b"x" * extents
    info = tarfile.TarInfo("GNUSparseFile.0/holes.bin")
    info.size = len(data)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": "holes.bin", "GNU.sparse.realsize": str(extents)}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as t:
        t.addfile(info, io.BytesIO(data))
    return path


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def test_hostile_archives_refused_old_content_intact(site_v1, daemon, tmp_path):
    failures = []
    for ident, path, message in hostile_archives(tmp_path):
        r = upload(daemon, "blog", path)
        if r.returncode != 1 or message not in r.stderr or not r.stderr.startswith("berth: "):
            failures.append(f"{ident}: {r!r}")
            continue
        assert_v1_intact(site_v1)
    assert not failures, "\n".join(failures)
    # Nothing landed outside the site either.
    assert not os.path.exists("/tmp/x/file")


def test_status_codes(site_v1, daemon, tmp_path):
    """The API's statuses: 422 for a refused entry, 413 for a bomb, 400 for junk."""
    cases = [(write_tar(tmp_path / "a.tar", [(tinfo("/abs"), b"x")]), 422),
             (write_zip(tmp_path / "b.zip", [("z", bytes(20 << 20))]), 413),
             (write_bytes(tmp_path / "c.bin", b"junk" * 100), 400),
             (damaged_zip(tmp_path / "d.zip"), 400),
             (sparse_map_bomb(tmp_path / "e.tgz"), 413)]
    for path, status in cases:
        r = upload(daemon, "blog", path, json_out=True)
        assert r.returncode == 1, r
        assert r.json()["error"]["status"] == status, r
    assert_v1_intact(site_v1)


def test_limits_files_and_size(daemon_factory, tmp_path):
    d = daemon_factory().start(env={"BERTH_UPLOAD_MAX_FILES": "50", "BERTH_UPLOAD_MAX_SIZE": "1M"})
    info = make_site(d)
    r = upload(d, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1)]))
    assert r.returncode == 0, r

    many = write_zip(tmp_path / "many.zip", [(f"f{i}.html", b"x") for i in range(60)])
    r = upload(d, "blog", many)
    assert r.returncode == 1 and "the archive has more than 50 entries" in r.stderr, r
    assert_v1_intact(info)

    # Too large to even send: refused from Content-Length, before the body.
    big = write_tar(tmp_path / "big.tar", [(tinfo("big.bin"), os.urandom(2 << 20))])
    r = upload(d, "blog", big, json_out=True)
    assert r.returncode == 1, r
    assert r.json()["error"] == {"status": 413, "message": "the archive is larger than the upload limit of 1M"}
    assert_v1_intact(info)

    # Small to send, too large unpacked.
    wide = write_tar(tmp_path / "wide.tgz", [(tinfo("zeros.bin"), bytes(3 << 20))], mode="w:gz")
    assert os.path.getsize(wide) < 1 << 20
    r = upload(d, "blog", wide)
    assert r.returncode == 1 and "entry 'zeros.bin' is larger than 1M" in r.stderr, r
    assert_v1_intact(info)
    # The daemon still answers after refusing uploads.
    assert d.ok("site", "show", "blog")["name"] == "blog"


def test_unknown_site_and_missing_file(daemon, tmp_path):
    archive = write_zip(tmp_path / "a.zip", [("index.html", V1)])
    r = upload(daemon, "nosuch", archive)
    assert r.returncode == 1, r
    assert r.stderr.strip() == 'berth: no site named "nosuch"'

    make_site(daemon)
    r = upload(daemon, "blog", tmp_path / "missing.zip")
    assert r.returncode == 1, r
    assert r.stderr.strip() == f"berth: cannot upload {tmp_path}/missing.zip: No such file or directory"

    r = daemon.berth("site", "upload", "blog")
    assert r.returncode == 2, r


def test_stale_staging_is_not_served_and_upload_still_works(site_v1, daemon, tmp_path):
    """Debris from a crash (a .upload-* dir) never blocks the next upload."""
    stale = os.path.join(site_dir(site_v1), ".upload-stale1")
    os.makedirs(os.path.join(stale, "tree"))
    r = upload(daemon, "blog", write_zip(tmp_path / "v2.zip", [("v2.html", b"2")]))
    assert r.returncode == 0, r
    assert os.listdir(public(site_v1)) == ["v2.html"]


# ---- the unpacking runs beside berthd's loop ----

def children(daemon):
    pid = daemon.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def upload_in_background(daemon, name, path):
    result = []
    thread = threading.Thread(target=lambda: result.append(upload(daemon, name, path)))
    thread.start()
    return thread, result


def test_the_daemon_answers_while_an_upload_is_unpacked(daemon_factory, tmp_path):
    """A big upload's unpacking takes seconds: berthd goes on answering meanwhile, the
    site cannot be removed under it, and its answer comes once the content is live.
    A berthd stopped in the middle leaves the old content and no debris."""
    gate = tmp_path / "gate"
    d = daemon_factory().start(env={"BERTH_TEST_UPLOAD_GATE": str(gate)})
    gate.touch()
    info = make_site(d)
    assert upload(d, "blog", write_zip(tmp_path / "v1.zip", [("index.html", V1)])).returncode == 0
    gate.unlink()
    before = children(d)

    v2 = write_zip(tmp_path / "v2.zip", [("index.html", b"v2\n"), ("about.html", b"about\n")])
    thread, result = upload_in_background(d, "blog", v2)
    unpacker = wait_for(lambda: children(d) - before, timeout=10)
    assert unpacker, "no process unpacks the upload"
    # The upload is waiting at the gate; the API answers all the same.
    st = d.berth("status", timeout=10)
    assert st.returncode == 0, st
    rm = d.berth("site", "rm", "blog")
    assert rm.returncode == 1
    assert rm.stderr.strip() == ("berth: an upload to site blog is in progress: wait for it to end, "
                                 "then remove the site"), rm
    assert thread.is_alive() and not result
    assert_v1_intact(info)

    gate.touch()
    thread.join(timeout=30)
    assert result and result[0].returncode == 0, result
    assert result[0].stdout.strip() == "uploaded 2 files (9 bytes) to site blog"
    assert sorted(os.listdir(public(info))) == ["about.html", "index.html"]
    assert wait_for(lambda: not (children(d) & unpacker)), "the unpacking process was not reaped"
    no_debris(info)

    # Stopped half-way: the content stays as it was, and nothing is left behind.
    gate.unlink()
    thread, result = upload_in_background(d, "blog", tmp_path / "v1.zip")
    assert wait_for(lambda: children(d) - before, timeout=10)
    d.stop()
    thread.join(timeout=30)
    assert result and result[0].returncode == 1
    assert "stopped while unpacking; the site keeps its old content" in d.log()
    assert sorted(os.listdir(public(info))) == ["about.html", "index.html"]
    gate.touch()
    d.start(env={"BERTH_TEST_UPLOAD_GATE": str(gate)})
    no_debris(info)
    assert d.berth("site", "rm", "blog").returncode == 0
