from components.monitor.component import act_on_monitoring, check_model

__all__ = ["act_on_monitoring", "check_model"]
