"""The queries behind the Subsonic methods (``server.web.subsonic``): plain services
over a session, no HTTP."""
