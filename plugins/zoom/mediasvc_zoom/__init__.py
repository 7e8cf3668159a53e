"""mediasvc live sessions on Zoom: meetings over Server-to-Server OAuth, signed webhooks, attendance reports
and a live dashboard panel."""
