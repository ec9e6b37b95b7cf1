"""On-chain attestation of final alerts: canonical encoding, Merkle batches, the registry, verification."""
