from plexhub.cli import entry

entry()
