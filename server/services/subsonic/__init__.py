"""The Subsonic API's queries and operations over a database session (no Quart): what
``server/web/subsonic/`` answers with."""
