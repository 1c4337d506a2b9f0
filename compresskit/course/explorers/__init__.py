"""ipywidgets explorers, one module per chapter topic. Each returns a widget to display."""
