"""plexhub.policies: access, compliance and storage rules as data plus small pure evaluators.

Nothing here does I/O; callers pass in what the rules need and get a :class:`Decision`.
"""
