"""Alerting: rules over traces, logs and metrics evaluated inside ``otelhouse serve``, state
in ``otelhouse_alerts``, notifications in Alertmanager's webhook and Slack's formats."""
