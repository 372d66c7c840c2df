"""Processing engines other than the native one (``[Processing] engine``): :mod:`.otb`."""
