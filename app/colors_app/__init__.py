"""Colors: the web dashboard and JSON API of the Colors product."""
