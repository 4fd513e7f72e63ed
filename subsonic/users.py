"""The ``user`` element (``getUser``): what an account may do through the API, in the
XSD's terms. Music folders are plain numbers: :data:`LOCAL_FOLDER` is this instance's
catalogue, :data:`PARTNERS_FOLDER` the partners' tracks a listener plays here."""

from __future__ import annotations

from subsonic.envelope import Node

LOCAL_FOLDER = 1
PARTNERS_FOLDER = 2
FOLDERS = (LOCAL_FOLDER, PARTNERS_FOLDER)


def user_node(username: str, email: str | None, *, admin: bool, uploads: bool) -> Node:
    """``<user>``, its attributes in the XSD's order: streaming, downloads (of what the
    listener may download) and playlists for everyone; uploads for artists and labels;
    nothing this server has no API for (settings, cover art, comments, podcasts,
    jukebox, shares, video)."""
    return Node(
        {
            "username": username,
            "email": email or None,
            "scrobblingEnabled": True,
            "adminRole": admin,
            "settingsRole": False,
            "downloadRole": True,
            "uploadRole": uploads,
            "playlistRole": True,
            "coverArtRole": False,
            "commentRole": False,
            "podcastRole": False,
            "streamRole": True,
            "jukeboxRole": False,
            "shareRole": False,
            "videoConversionRole": False,
        },
        children=[("folder", [Node(text=folder) for folder in FOLDERS])],
    )
