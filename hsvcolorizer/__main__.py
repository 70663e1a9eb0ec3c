"""`python -m hsvcolorizer` opens the desktop application; with arguments it is the command line."""

import sys

if __name__ == "__main__":
    if len(sys.argv) > 1:
        from hsvcolorizer.cli import main

        sys.exit(main())
    from hsvcolorizer.gui.app import main as gui_main

    sys.exit(gui_main())
