"""mevwatch simulation lab: real contracts on anvil, traders and attack bots with ground truth (issue 4)."""
