"""The nginx site `playfair nginx-site` prints, run by a real nginx in front of a real
`playfair run`: the stream route's redirect reaches playfair, and nginx checks and serves
the signed audio link alone (playfair stopped, it still plays), answering as playfair's
own audio layer does; links it did not sign, or past their time, are refused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from server.services.media import links
from tests.audio import make_audio
from tests.instances import Instance, make_instance
from tests.nginx import Nginx, start_nginx
from tests.postgres import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Iterator[Instance]:
    made = make_instance(tmp_path / "data", "127.0.0.7", database_url)
    made.cli("user", "add", "mira", "--role", "artist", stdin="a long password\n")
    made.cli("artist", "add", "aurora", "--owner", "mira")
    folder = tmp_path / "Gifts"
    folder.mkdir()
    make_audio(folder / "01 - Gift.flac", "flac", seconds=3)
    made.cli("import", str(folder), "--artist", "aurora", "--free")
    made.start()
    made.wait_for(r"release (\d+) announced", timeout=120)
    yield made
    if made.process is not None:
        made.stop()


@pytest.fixture
def nginx(instance: Instance, tmp_path: Path) -> Iterator[tuple[Nginx, str]]:
    port = free_port()
    upstream = instance.base.split("://", 1)[1]
    site = instance.cli("nginx-site", "--listen", f"127.0.0.1:{port}", "--upstream", upstream)
    [secret] = re.findall(r'secure_link_md5 "\$secure_link_expires\$uri ([0-9a-f]+)";', site)
    running = start_nginx(tmp_path, site + "\n", port)
    yield running, secret
    running.stop()


COMPARED = ("content-type", "content-length", "content-range", "etag", "last-modified",
            "cache-control")  # fmt: skip


def test_nginx_serves_the_links_alone(instance: Instance, nginx: tuple[Nginx, str]) -> None:
    proxy, secret = nginx
    with httpx.Client(base_url=proxy.base, timeout=30) as http:
        redirect = http.get("/tracks/1/stream?format=mp3")
        assert redirect.status_code == 307, redirect.text  # playfair's answer, proxied
        assert "nginx" in redirect.headers["server"]
        link = redirect.headers["location"]
        assert link.startswith("/audio/tracks/1/")

        ranged = {"Range": "bytes=100-4195"}
        theirs = http.get(link, headers=ranged)
        assert theirs.status_code == 206
        assert theirs.headers["server"].startswith("nginx")
        ours = httpx.get(instance.base + link, headers=ranged)  # playfair's own audio layer
        assert ours.status_code == 206
        assert ours.content == theirs.content and len(theirs.content) == 4096
        for header in COMPARED:
            assert ours.headers.get(header) == theirs.headers.get(header), header
        whole = http.get(link)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "audio/mpeg"
        ours_whole = httpx.get(instance.base + link)
        assert ours_whole.content == whole.content
        for header in (*COMPARED, "accept-ranges"):  # (nginx says it on a 200 only)
            assert ours_whole.headers.get(header) == whole.headers.get(header), header
        assert http.get(link, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304

        # refused: a link for another file, another time, or nobody's signature
        path, query = urlsplit(link).path, urlsplit(link).query
        other = path.replace("stream_mp3.mp3", "stream_opus.opus") + "?" + query
        assert http.get(other).status_code == 403
        assert http.get(path + "?" + query.replace("expires=", "expires=9")).status_code == 403
        assert http.get(path).status_code == 403
        old = links.signed_link(path.removeprefix("/audio/"), secret, now=time.time() - 7200,
                                lifetime=600)  # fmt: skip
        assert old is not None
        assert http.get(old).status_code == 410
        assert httpx.get(instance.base + old).status_code == 410  # alike in-process
        # files beside the audio get no link and are not reachable through it
        assert http.get("/audio/secret.key?" + query).status_code == 403

        instance.stop()  # nginx alone from here on
        again = http.get(link, headers={"Range": "bytes=0-99"})
        assert again.status_code == 206 and again.content == whole.content[:100]
        assert http.get("/tracks/1/stream?format=mp3").status_code == 502
