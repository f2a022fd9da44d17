"""The administration page's tabs (:mod:`dashboard.pages.admin`), one module each: its layout and its
callbacks, which call the same core functions as the CLI and the REST API and check the permissions of
the matching API routes."""
