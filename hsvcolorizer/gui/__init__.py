"""PySide6 desktop application: Colorize, Batch and Train tabs.

Importing this package does not import Qt; the entry point is
``hsvcolorizer.gui.app.main``.
"""
