"""Dash pages, one module per page, each with ``dash.register_page`` and its callbacks beside the layout."""
