"""mevwatch streams: chain sources (node, files), message envelopes and the bus."""
