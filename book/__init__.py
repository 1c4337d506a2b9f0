"""The course as a static site (``make book``): see book/build.py."""
