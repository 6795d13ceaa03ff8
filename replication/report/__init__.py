"""Tables and figures built from results CSVs alone, each beside the paper's numbers."""
