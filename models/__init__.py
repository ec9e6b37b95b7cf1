"""mevwatch models: transaction graphs and the GNN scorer (see issue 5)."""
