"""One module per pipeline step: ``run_<step>(...)`` over artifact folders plus ``main(argv)``."""
