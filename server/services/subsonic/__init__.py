"""What the Subsonic API reads and changes, over a database session: songs, albums and
artists as ``subsonic.elements`` values for one listener, and the operations behind the
methods (``server/web/subsonic/`` adapts them to calls)."""
