"""Results assembled: the metrics contract, the goals and results tables, the reports site, a notebook's finish."""
