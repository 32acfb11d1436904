"""The newsroom console, served under /console (issue 13): sign-in, sessions, pages."""
