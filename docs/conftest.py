"""pytest settings for the doctests in docs/*.md (``tox -e docs``)."""

# Sphinx's configuration and the site's build outputs hold no doctests, and
# auto_examples/ has copies of the gallery scripts, which would run on import.
collect_ignore = ["conf.py"]
collect_ignore_glob = ["_build/*", "auto_examples/*", "generated/*"]
