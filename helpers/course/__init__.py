"""The notebooks' lessons: the configuration and presets, each notebook's recipe, the studies, the cost model, plots and tables."""
