package httpapi

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// FormatFlagger answers 200 (allowed) or 403 (blocked), as Flagger's
// confirm-rollout webhook expects.
const FormatFlagger = "flagger"

func (s *Server) serveGate(w http.ResponseWriter, r *http.Request) {
	key := client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("slopolicy")}
	var p v1.SLOPolicy
	if err := s.reader.Get(r.Context(), key, &p); err != nil {
		if apierrors.IsNotFound(err) {
			base.WriteError(w, http.StatusNotFound, "SLOPolicy "+key.String()+" not found")
			return
		}
		ctrl.LoggerFrom(r.Context()).Error(err, "Failed to read an SLOPolicy", "slopolicy", key)
		base.WriteError(w, http.StatusServiceUnavailable, "cannot read SLOPolicy "+key.String())
		return
	}
	g := base.GateOf(&p, s.clock.Now())
	code := http.StatusOK
	if r.URL.Query().Get("format") == FormatFlagger && !g.Allowed {
		code = http.StatusForbidden
	}
	base.WriteJSON(w, code, g)
}
