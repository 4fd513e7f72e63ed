"""The nginx site in front of an instance (``playfair nginx-site`` prints it), as a pure
builder: the benchmark and the tests run nginx on exactly this text.

nginx checks and serves signed audio links alone (``secure_link``, the same signature as
``server.services.media.links``; ``sendfile``, no call to playfair per range), answers
X-Accel-Redirect from the internal ``/_media/`` location when the instance uses it, and
proxies everything else to playfair over kept-alive connections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# What may go into the file as it is (paths, addresses, names, the hex secret).
_SAFE = re.compile(r"[A-Za-z0-9._:/\-\[\]]+")


@dataclass(frozen=True)
class NginxSite:
    server_name: str  # the instance's host name
    listen: str  # what nginx listens on: "80", "127.0.0.1:8081"
    upstream: str  # where playfair serves: "127.0.0.1:8080"
    media_dir: Path  # absolute
    link_secret: str  # links.link_secret of the instance secret
    # extension → Content-Type of the audio location: links.TYPES, which the in-process
    # server (server.web.audio_links) answers with too
    types: dict[str, str]
    x_accel: str = ""  # media.x_accel_redirect ("" when not used)
    max_body_bytes: int = 500 * 1024 * 1024  # the largest upload
    cache_control: str = "private, max-age=3600"


def _checked(what: str, value: str) -> str:
    """Values go into the file as they are: refuse what could end a directive."""
    if not _SAFE.fullmatch(value):
        raise ValueError(f"{what} {value!r} cannot go into an nginx site as it is")
    return value


def nginx_site(site: NginxSite) -> str:
    media = _checked("the media folder", str(site.media_dir).rstrip("/")) + "/"
    if not site.media_dir.is_absolute():
        raise ValueError(f"the media folder {site.media_dir} must be an absolute path")
    secret = _checked("the link secret", site.link_secret)
    types = " ".join(
        f'"{content_type}" {_checked("an extension", extension)};'
        for extension, content_type in sorted(site.types.items())
    )
    accel = ""
    if site.x_accel:
        accel = (
            f"    # X-Accel-Redirect answers (media.x_accel_redirect)\n"
            f"    location {_checked('the X-Accel location', site.x_accel)} {{\n"
            f"        internal;\n        alias {media};\n    }}\n"
        )
    return f"""# playfair: the nginx site of {_checked("the server name", site.server_name)}.
# It holds the audio-link secret: readable by root and nginx only (chmod 640).
upstream playfair {{
    server {_checked("the upstream", site.upstream)};
    keepalive 64;
}}

server {{
    listen {_checked("the listen address", site.listen)};
    server_name {site.server_name};
    client_max_body_size {site.max_body_bytes};

    # Signed audio links, checked and served here alone.
    location /audio/ {{
        secure_link $arg_md5,$arg_expires;
        secure_link_md5 "$secure_link_expires$uri {secret}";
        if ($secure_link = "") {{ return 403; }}
        if ($secure_link = "0") {{ return 410; }}
        alias {media};
        types {{ {types} }}
        default_type application/octet-stream;
        add_header Cache-Control "{site.cache_control}";
        sendfile on;
        tcp_nopush on;
    }}

{accel}    location / {{
        proxy_pass http://playfair;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 1h;
        proxy_request_buffering off;
    }}
}}
"""
