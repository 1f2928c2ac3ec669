package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/alertbridge/alertbridge/internal/metrics"
)

// unmatchedRoute labels the answers to paths no route serves.
const unmatchedRoute = "unmatched"

// instrument counts, times and gauges what h answers with promhttp,
// labelled by the route's path pattern (e.g. /v1/alerts/{namespace}/{name}/ack),
// never by the request's path, whose names are unbounded.
func instrument(route string, h http.Handler) http.Handler {
	l := prometheus.Labels{"route": route}
	return promhttp.InstrumentHandlerInFlight(metrics.HTTPInFlight,
		promhttp.InstrumentHandlerDuration(metrics.HTTPRequestSeconds.MustCurryWith(l),
			promhttp.InstrumentHandlerCounter(metrics.HTTPRequests.MustCurryWith(l), h)))
}
