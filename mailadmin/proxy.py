"""The client's address behind nginx.

`make install` runs gunicorn on a unix socket that only nginx's group can reach; a request that
came that way has no REMOTE_ADDR of its own, and nginx names the client in X-Real-IP. Login
throttling (django-axes), the audit rows and the access log need that address. A request over
TCP (make run's loopback listener) keeps its own REMOTE_ADDR, and its X-Real-IP is ignored: there,
any client could claim any address.
"""

from __future__ import annotations

import ipaddress


class UnixSocketClientAddress:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.META.get("REMOTE_ADDR"):
            claimed = request.META.get("HTTP_X_REAL_IP", "").strip()
            try:
                request.META["REMOTE_ADDR"] = str(ipaddress.ip_address(claimed))
            except ValueError:
                pass
        return self.get_response(request)
