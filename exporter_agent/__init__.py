"""homelabcmd exporter agent: node_exporter-compatible /metrics plus heartbeats to control."""
