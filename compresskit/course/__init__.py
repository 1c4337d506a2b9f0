"""Course support: exercise checkers, widget explorers and plots for the chapters.

This layer may import anything in compresskit; nothing else in compresskit imports it.
"""
