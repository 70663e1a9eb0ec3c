"""The one exception type for errors a user can cause and fix."""


class ColorizerError(Exception):
    """A problem the user can act on (bad file, bad option, missing weights).

    The message is one line, written for a person: the CLI prints it without a
    traceback and the GUI shows it in a dialog.
    """
