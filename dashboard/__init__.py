"""The web layer: a Flask server carrying the Dash pages, the REST API (/api/v1) and JWT auth.

Build it with :func:`dashboard.app.create_app`. Only this package imports dash and flask.
"""
