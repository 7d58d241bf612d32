"""UFO: unified feature optimization — a multi-task supernet, task routing, trimming (arXiv 2207.10341)."""
