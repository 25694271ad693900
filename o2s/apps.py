from django.apps import AppConfig


class O2SConfig(AppConfig):
    name = "o2s"
    verbose_name = "O2S integration (REST API, API keys, callbacks)"
