"""mevwatch dashboards: Grafana dashboards as code (see issue 8)."""
