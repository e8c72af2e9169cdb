"""Results assembled: the metrics contract and README tables, the reports site, a notebook's finish."""
