# Only a lazy ServiceMaker here: importing anything heavy (klein, the reactor)
# from a plugin module breaks `twistd --reactor=...` for every other plugin.
from twisted.application.service import ServiceMaker

dockerpy = ServiceMaker(
    "dockerpy",
    "dockerpy.tap",
    "A Docker-compatible container engine (Docker Engine API on a unix socket)",
    "docker",
)
