"""Tests of dnabird.genome.fetch and the GRCh37 manifest, offline (local paths, file://)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import pytest

from dnabird.cli import main
from dnabird.errors import DownloadError
from dnabird.genome.assemblies import load_assembly
from dnabird.genome.chromosomes import PRIMARY_CHROMOSOMES
from dnabird.genome.fetch import expected_checksum, fetch_genome

PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB, more than one read chunk


@pytest.fixture
def remote(tmp_path):
    """A 'remote' file served from a local folder."""
    folder = tmp_path / "remote"
    folder.mkdir()
    path = folder / "genome.fa.gz"
    path.write_bytes(PAYLOAD)
    return path


def test_fetch_from_file_url_verifies_sha256(remote, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = fetch_genome("grch37", tmp_path / "out", url=remote.as_uri(), sha256=sha)
    assert path.read_bytes() == PAYLOAD
    record = json.loads((tmp_path / "out" / "genome.fa.gz.json").read_text())
    assert record["sha256"] == sha and record["verified_with"] == "sha256"
    assert record["md5"] == hashlib.md5(PAYLOAD).hexdigest()


def test_fetch_resumes_a_partial_download(remote, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "genome.fa.gz.part").write_bytes(PAYLOAD[:300_000])
    path = fetch_genome("grch37", out, url=str(remote), md5=hashlib.md5(PAYLOAD).hexdigest())
    assert path.read_bytes() == PAYLOAD and not (out / "genome.fa.gz.part").exists()


def test_checksum_mismatch_deletes_the_partial_file(remote, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch_genome("grch37", out, url=str(remote), sha256="0" * 64)
    assert list(out.iterdir()) == []


def test_unknown_checksum_is_refused_unless_no_verify(remote, tmp_path):
    with pytest.raises(DownloadError, match="no checksum known"):
        fetch_genome("grch37", tmp_path / "out", url=str(remote))
    path = fetch_genome("grch37", tmp_path / "out", url=str(remote), verify=False)
    assert path.read_bytes() == PAYLOAD


def test_checksum_list_in_md5sum_format(tmp_path):
    listing = tmp_path / "md5sum.txt"
    listing.write_text("0123abcd  other.fa.gz\nDEADBEEF  hg19.fa.gz\n")
    source = {"checksum_url": listing.as_uri(), "checksum_format": "md5sum"}
    assert expected_checksum(source, False, "hg19.fa.gz", None, None) == ("md5", "deadbeef")
    with pytest.raises(DownloadError, match="no checksum listed"):
        expected_checksum(source, False, "missing.fa.gz", None, None)


def test_cli_fetch_errors_exit_2(remote, tmp_path, capsys):
    code = main(["fetch-genome", "grch37", "--out", str(tmp_path / "o"), "--url", str(remote),
                 "--sha256", "1" * 64])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(remote) in err
    code = main(["fetch-genome", "grch38x", "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown assembly" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sha256", "abc"], "--sha256: expected 64 hexadecimal digits, got 'abc'"),
        (["--md5", "z" * 32], "--md5: expected 32 hexadecimal digits"),
        (["--sha256", "1" * 64, "--md5", "1" * 32], "not allowed with argument"),
    ],
)
def test_cli_checksum_options_are_checked_before_downloading(
    remote, tmp_path, capsys, args, expected
):
    """Before: a malformed checksum was only found to mismatch after the whole download."""
    out = tmp_path / "o"
    try:
        code = main(["fetch-genome", "grch37", "--out", str(out), "--url", str(remote), *args])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not out.exists()


def test_cli_unusable_download_folder_exits_2(remote, tmp_path, capsys):
    """Before: a FileExistsError / NotADirectoryError traceback."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    code = main(["fetch-genome", "grch37", "--out", str(blocker / "data"), "--url", str(remote),
                 "--no-verify"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot create the download folder" in err


def test_an_unreadable_download_record_means_download_again(remote, tmp_path):
    out = tmp_path / "out"
    fetch_genome("grch37", out, url=str(remote), verify=False)
    (out / "genome.fa.gz.json").write_text("{truncated")
    path = fetch_genome("grch37", out, url=str(remote), verify=False)
    assert path.read_bytes() == PAYLOAD
    assert json.loads((out / "genome.fa.gz.json").read_text())["bytes"] == len(PAYLOAD)


def test_grch37_manifest_lists_the_24_primary_chromosomes():
    manifest = load_assembly("grch37")
    assert load_assembly("HG19") == manifest
    chromosomes = manifest["chromosomes"]
    assert [c["ucsc"] for c in chromosomes] == list(PRIMARY_CHROMOSOMES)
    ensembl = [c.removeprefix("chr") for c in PRIMARY_CHROMOSOMES]
    assert [c["ensembl"] for c in chromosomes] == ensembl
    assert sum(c["length"] for c in chromosomes) == manifest["primary_bp"] == 3_095_677_412
    assert chromosomes[0]["length"] == 249_250_621  # chr1: differs from GRCh38 (248,956,422)
    for source in manifest["sources"].values():
        assert source["url"].startswith("https://") and source["checksum_status"]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD; honours ``Range: bytes=N-`` only when the server says so."""

    def do_GET(self):  # noqa: N802 - http.server API
        ranged = self.server.ranges and self.headers.get("Range", "").startswith("bytes=")
        start = int(self.headers["Range"][6:].rstrip("-")) if ranged else 0
        self.server.requests.append(self.headers.get("Range"))
        body = PAYLOAD[start:]
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("ranges", [True, False])
def test_http_download_resumes_with_range_or_restarts_without(tmp_path, ranges):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.ranges, server.requests = ranges, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "out"
        out.mkdir()
        (out / "hg19.fa.gz.part").write_bytes(PAYLOAD[:1000])
        url = f"http://127.0.0.1:{server.server_port}/hg19.fa.gz"
        path = fetch_genome("grch37", out, url=url, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    finally:
        server.shutdown()
        server.server_close()
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["bytes=1000-"]
