"""A hospital's own Django project with the PD-L1 module installed into it (tests/test_hostproject.py).

Its own settings (settings.py: only what README.md, "Installing into a host Django project", tells a
host to set), its own user model (hostusers.User) and its own URLs, the module under /pathology/.
"""
