"""`python -m hsvcolorizer [IMAGE]` opens the desktop application;
`python -m hsvcolorizer COMMAND ...` (colorize, batch, train...) is the command line."""

import sys

from hsvcolorizer.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
